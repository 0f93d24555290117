"""The intake list as a shared resource: no entry, however broken or hostile, stops it for the
entries behind it, whether it breaks the parser, is huge, or kills the worker process holding
it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.errors import InvalidRequestError
from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import Workers
from worker.send.intake import POISON_REASON, Intake


MAX_BYTES = 4096
DEEP = "[" * 100_000 + "]" * 100_000
"""JSON nested deeper than Python's recursion limit."""
VALID = {"text": "Hi", "to": ["0612345678"]}


def entry(key: str, **fields: Any) -> str:
    return json.dumps({"key": key, **VALID, **fields})


def intake(redis: Redis, name: str = "w-test", max_bytes: int = MAX_BYTES) -> Intake:
    producer = Producer(redis, ProducerSettings())
    return Intake(redis, producer, ttl_s=3600, worker_name=name, max_bytes=max_bytes)


def dead_reasons(redis: Redis) -> dict[str, str]:
    """Intake dead letters: the first 30 characters of the entry → the reason."""
    store = MessageStore(redis)
    return {(d.detail or "")[:30]: d.reason for d in store.dead_letters() if d.kind == "intake"}


def states(redis: Redis, *wanted: str) -> dict[str, str | None]:
    store = MessageStore(redis)
    return {k: (r.state.value if (r := store.get(k)) else None) for k in wanted}


def one_outcome(redis: Redis) -> bool:
    """The one entry pushed became exactly one intake dead letter or one queued message, and
    left nothing in the processing list."""
    dead = [d for d in MessageStore(redis).dead_letters() if d.kind == "intake"]
    messages = [k for k in redis.scan_iter(keys.message("*")) if not k.endswith(b":history")]
    held = redis.llen(keys.intake_processing("w-test"))
    return (len(dead), len(messages), held) in {(1, 0, 0), (0, 1, 0)}


def test_entries_that_used_to_kill_the_worker_become_dead_letters_and_the_rest_go_on(
    redis: Redis,
) -> None:
    redis.rpush(
        keys.INTAKE,
        DEEP,
        '{"key": "surrogate-\\ud800", "text": "Hi", "to": ["0612345678"]}',
        '{"key": "text", "text": "Hi \\udfff", "to": ["0612345678"]}',
        entry("edge", send_at="9999-12-31T23:59:59-23:00"),
        b'{"key": "\xff"}',
        entry("after"),
    )

    assert intake(redis, max_bytes=1 << 20).drain() == 6

    assert dead_reasons(redis) == {
        DEEP[:30]: "not valid JSON: nested too deeply",
        '{"key": "surrogate-\\ud800", "t': (
            "key: holds a lone surrogate (U+D800 at character 11); send valid Unicode"
        ),
        '{"key": "text", "text": "Hi \\u': (
            "text: holds a lone surrogate (U+DFFF at character 4); send valid Unicode"
        ),
        '{"key": "edge", "text": "Hi", ': (
            "send_at: is outside the dates that can be written in UTC (years 1 to 9999)"
        ),
        '{"key": "\ufffd"}': "not valid UTF-8 JSON",
    }
    assert states(redis, "after", "edge") == {"after": "queued", "edge": None}
    assert redis.llen(keys.intake_processing("w-test")) == 0


def test_an_entry_over_the_size_limit_is_never_read_whole(redis: Redis) -> None:
    huge = entry("huge", text="x" * 600) + " " * (10 * MAX_BYTES)
    redis.rpush(keys.INTAKE, huge, entry("after"))
    taken: list[list[bytes]] = []
    worker = intake(redis)
    take = worker._take

    def recording_take(**kw: Any) -> list[bytes]:
        taken.append(take(**kw))
        return taken[-1]

    worker._take = recording_take  # type: ignore[assignment]

    assert worker.drain() == 2

    assert max(len(item) for call in taken for item in call) < 600
    assert dead_reasons(redis) == {
        '{"key": "huge", "text": "xxxxx': (
            f"entry is 41609 bytes; the intake reads at most {MAX_BYTES} (SMSQ_INTAKE_MAX_BYTES)"
        )
    }
    # The dead letter keeps the start that was read and the whole entry's size.
    [letter] = MessageStore(redis).dead_letters()
    assert (letter.detail, letter.size_bytes) == (huge[:500], 41609)
    assert len(huge) == 41609
    assert states(redis, "after") == {"after": "queued"}


def test_one_take_reads_at_most_about_the_size_limit(redis: Redis) -> None:
    big = [entry(f"big-{n}", text="y" * 600, campaign="z" * 99) for n in range(14)]
    redis.rpush(keys.INTAKE, *big)

    counts = [intake(redis).drain() for _ in range(3)]

    per_take = -(-MAX_BYTES // len(big[0]))  # a take stops once it holds MAX_BYTES
    assert (len(big[0]), per_take, counts) == (765, 6, [6, 6, 2])


def test_an_entry_that_breaks_the_batch_call_is_dead_lettered_alone(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever Python error an entry causes in the enqueue, its batch-mates are enqueued."""
    real = Producer.enqueue_many

    def enqueue_many(self: Producer, requests: Any, **kw: Any) -> Any:
        requests = list(requests)
        if any(r.get("key") == "bomb" for r in requests):
            raise MemoryError("simulated")
        return real(self, requests, **kw)

    monkeypatch.setattr(Producer, "enqueue_many", enqueue_many)
    redis.rpush(keys.INTAKE, entry("before"), entry("bomb"), entry("after"))

    assert intake(redis).drain() == 3

    assert dead_reasons(redis) == {
        '{"key": "bomb", "text": "Hi", ': (
            "could not be enqueued (MemoryError); kept here for an operator"
        )
    }
    assert states(redis, "before", "after") == {"before": "queued", "after": "queued"}


def test_a_stopped_workers_entries_go_back_once_then_alone_then_to_the_dead_letters(
    redis: Redis,
) -> None:
    held = keys.intake_processing("w-gone")
    redis.rpush(held, entry("a"), entry("b"))
    redis.set(keys.alive("w-live"), "1")
    redis.rpush(keys.intake_processing("w-live"), entry("live"))

    first = intake(redis).recover()

    assert (first.returned, first.poisoned) == (2, 0)
    assert [json.loads(e)["key"] for e in redis.lrange(keys.INTAKE, 0, -1)] == ["a", "b"]
    assert redis.lrange(keys.intake_processing("w-live"), 0, -1) == [entry("live").encode()]
    # "a" and "b" were held by a stopped worker: they are taken one at a time.
    redis.lmove(keys.INTAKE, keys.intake_processing("w-gone-again"), "LEFT", "RIGHT")
    second = intake(redis).recover()
    assert (second.returned, second.poisoned) == (0, 1)
    assert dead_reasons(redis) == {'{"key": "a", "text": "Hi", "to': POISON_REASON}
    assert intake(redis).drain() == 1
    assert redis.exists(keys.INTAKE_ATTEMPTS) == 0  # "b" is through: batches again
    redis.rpush(keys.INTAKE, entry("c"), entry("d"))
    assert intake(redis).drain() == 2
    assert states(redis, "a", "b", "c", "d") == {
        "a": None,
        "b": "queued",
        "c": "queued",
        "d": "queued",
    }


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=100).map(str.encode))
def test_any_byte_string_becomes_a_message_or_a_dead_letter(redis: Redis, raw: bytes) -> None:
    """Property: whatever bytes are RPUSHed, one drain takes them and leaves either a queued
    message or exactly one intake dead letter, never an exception."""
    redis.flushdb()
    redis.rpush(keys.INTAKE, raw)

    assert intake(redis).drain() == 1

    assert one_outcome(redis)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["key", "text", "to", "send_at", "campaign", "callback_url", "lane"]),
        st.text(alphabet=st.characters(categories=["Cs", "L", "N", "P"]), max_size=20)
        | st.lists(st.text(max_size=14), max_size=3),
    )
)
def test_any_request_of_strings_with_surrogates_is_refused_or_queued(
    redis: Redis, obj: dict[str, Any]
) -> None:
    redis.flushdb()
    redis.rpush(keys.INTAKE, json.dumps(obj))

    assert intake(redis).drain() == 1

    assert one_outcome(redis)


def test_a_worker_killed_by_an_entry_twice_stops_the_restart_loop(workers: Workers) -> None:
    """Worker processes that die holding intake entries (SMSQ_CRASH_AT=holding_intake, as an
    out-of-memory kill would) do not die on them forever: the entry a second worker died on
    alone becomes a dead letter, every other entry is sent, and the next worker exits 0."""
    redis = Redis.from_url(workers.redis_url)
    redis.rpush(keys.INTAKE, entry("one"), entry("two"), entry("three"))
    dies = {"SMSQ_CRASH_AT": "holding_intake", "SMSQ_WORKER_DEAD_AFTER_S": "1"}

    first = workers.run_burst(**dies)
    time.sleep(1.2)  # the first worker's alive key expires
    second = workers.run_burst(**dies)
    time.sleep(1.2)
    third = workers.run_burst(SMSQ_WORKER_DEAD_AFTER_S="1")

    assert (first.returncode, second.returncode, third.returncode) == (137, 137, 0)
    store = MessageStore(redis)
    assert {d.reason for d in store.dead_letters() if d.kind == "intake"} == {POISON_REASON}
    assert [json.loads(d.detail or "")["key"] for d in store.dead_letters()] == ["one"]
    assert states(redis, "one", "two", "three") == {
        "one": None,
        "two": State.SENT.value,
        "three": State.SENT.value,
    }
    assert list(redis.scan_iter(keys.intake_processing("*"))) == []
    assert redis.llen(keys.INTAKE) == 0


def test_an_intake_entry_cannot_act_as_a_gateway_producer(redis: Redis) -> None:
    """Naming shop's account (its secret would sign the callbacks) or writing in shop's gw: key
    namespace (shop's own request would be answered as a duplicate, never sent) is refused;
    shop's request with that key then goes through as shop's."""
    redis.rpush(
        keys.INTAKE,
        entry("mine", producer="shop", callback_url="https://attacker.example/cb"),
        entry("gw:shop:order-1", to=["0698765432"]),
    )

    assert intake(redis).drain() == 2

    assert dead_reasons(redis) == {
        '{"key": "mine", "text": "Hi", ': (
            "producer: an intake entry cannot name a producer account (the gateway sets it "
            "from the login it authenticated)"
        ),
        '{"key": "gw:shop:order-1", "te': "key: keys starting with gw: belong to gateway producers",
    }
    shops = Producer(redis, ProducerSettings()).enqueue(
        {"key": "gw:shop:order-1", **VALID, "producer": "shop"}, source="gateway"
    )
    assert (shops.duplicate, shops.state) == (False, State.QUEUED)
    stored = MessageStore(redis).get("gw:shop:order-1")
    assert stored is not None
    assert stored.request["to"] == [{"phone": "33612345678", "params": []}]


def test_a_python_producer_cannot_write_in_the_gateway_namespace(redis: Redis) -> None:
    producer = Producer(redis, ProducerSettings())

    with pytest.raises(InvalidRequestError) as raised:
        producer.enqueue({"key": "gw:shop:order-1", **VALID})

    assert str(raised.value) == "key: keys starting with gw: belong to gateway producers"
    assert MessageStore(redis).get("gw:shop:order-1") is None


def test_a_python_producer_cannot_name_a_gateway_account(redis: Redis) -> None:
    """Its callbacks would be signed with shop's secret: a forged event shop's receiver trusts."""
    producer = Producer(redis, ProducerSettings())

    with pytest.raises(InvalidRequestError) as raised:
        producer.enqueue({"key": "mine", **VALID, "producer": "shop"})

    assert str(raised.value) == (
        "producer: a request from outside the gateway cannot name a producer account (the "
        "gateway sets it from the login it authenticated)"
    )
    assert MessageStore(redis).get("mine") is None
