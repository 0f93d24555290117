"""Producers: atomic idempotent enqueue, one round trip per batch, other languages via Redis."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from redis import Redis

from producers.config import ProducerSettings
from producers.enqueue import Enqueued, Producer, Refused
from producers.errors import ConfigError, InvalidRequestError, RedisUnavailableError
from producers.keys import message_id
from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import Workers
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider


class CountingRedis(Redis):
    """Counts commands sent to Redis (a pipeline or script call counts once)."""

    calls = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        CountingRedis.calls += 1
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def evalsha_calls(redis: Redis) -> int:
    stats = redis.info("commandstats").get("cmdstat_evalsha")
    return int(stats["calls"]) if stats else 0


def test_a_batch_is_one_script_call_per_200_recipients_pipelined(
    redis_server: RedisServer, redis: Redis
) -> None:
    """1 request is one script call; 500 single-recipient requests are three calls (200, 200,
    100) sent on one connection without waiting for each answer, not three round trips."""
    producer = Producer(CountingRedis.from_url(redis_server.url))
    producer.enqueue({"key": "warm-up", "text": "x", "to": ["0612345678"]})
    calls, commands = [], []
    for size in (1, 500):
        redis.config_resetstat()
        CountingRedis.calls = 0
        results = producer.enqueue_many(
            [{"key": f"{size}-{i}", "text": "x", "to": ["0612345678"]} for i in range(size)]
        )
        assert [r.as_dict() for r in results] == [
            {"key": f"{size}-{i}", "state": "queued"} for i in range(size)
        ]
        calls.append(evalsha_calls(redis))
        commands.append(CountingRedis.calls)
    assert calls == [1, 3]
    assert commands == [1, 1]  # the pipelined batch: one SCRIPT LOAD, then raw sends
    assert redis.llen("rq:queue:smsq-default") == 502
    assert redis.lrange("rq:queue:smsq-default", 1, 1) == [f"smsq-{message_id('1-0')}".encode()]
    assert redis.lindex("rq:queue:smsq-default", -1) == f"smsq-{message_id('500-499')}".encode()


def test_duplicates_across_pipelined_calls_are_found(producer: Producer, redis: Redis) -> None:
    """A key repeated 300 requests later (another script call) is answered as a duplicate."""
    batch = [{"key": f"d{i}", "text": "x", "to": ["0612345678"]} for i in range(300)]
    batch.append({"key": "d0", "text": "x", "to": ["0612345678"]})
    results = producer.enqueue_many(batch)
    assert [r.as_dict() for r in results[-2:]] == [
        {"key": "d299", "state": "queued"},
        {"key": "d0", "state": "queued", "duplicate": True},
    ]
    assert redis.llen("rq:queue:smsq-default") == 300


def test_pipelined_batch_survives_a_flushed_script_cache(producer: Producer, redis: Redis) -> None:
    """Redis restarted (script cache empty) after the producer loaded its script: every call
    answers NOSCRIPT, wrote nothing, and is run again the normal way."""
    producer.enqueue_many([{"key": f"w{i}", "text": "x", "to": ["0612345678"]} for i in range(250)])
    redis.script_flush()
    results = producer.enqueue_many(
        [{"key": f"s{i}", "text": "x", "to": ["0612345678"]} for i in range(450)]
    )
    assert [r.as_dict() for r in results] == [
        {"key": f"s{i}", "state": "queued"} for i in range(450)
    ]
    assert redis.llen("rq:queue:smsq-default") == 700


def test_a_refused_pipelined_batch_leaves_the_connection_pool_clean(
    producer: Producer, redis: Redis
) -> None:
    """Redis refusing writes (maxmemory) mid-pipeline raises a clear error; the connection
    with unread answers is dropped, so the next batch reads its own answers."""
    producer.enqueue_many([{"key": f"m{i}", "text": "x", "to": ["0612345678"]} for i in range(250)])
    redis.config_set("maxmemory", "1")
    try:
        with pytest.raises(RedisUnavailableError) as info:
            producer.enqueue_many(
                [{"key": f"o{i}", "text": "x", "to": ["0612345678"]} for i in range(450)]
            )
    finally:
        redis.config_set("maxmemory", "0")
    assert str(info.value).startswith(
        "Redis refused the command: command not allowed when used memory > 'maxmemory'"
    )
    results = producer.enqueue_many(
        [{"key": f"o{i}", "text": "x", "to": ["0612345678"]} for i in range(450)]
    )
    assert [r.as_dict() for r in results] == [
        {"key": f"o{i}", "state": "queued"} for i in range(450)
    ]
    assert redis.llen("rq:queue:smsq-default") == 700


def test_enqueue_many_answers_in_input_order(producer: Producer, redis: Redis) -> None:
    """Accepted, refused and duplicate requests come back in the order they were given."""
    results = producer.enqueue_many(
        [
            {"key": "a", "text": "x", "to": ["0612345678"]},
            {"key": "b", "text": "", "to": ["0612345678"]},
            {"key": "a", "text": "x", "to": ["0612345678"]},
            "not an object",  # type: ignore[list-item]  # hostile input on purpose
        ]
    )
    assert [r.as_dict() for r in results] == [
        {"key": "a", "state": "queued"},
        {"key": "b", "error": {"field": "text", "reason": "must not be empty"}},
        {"key": "a", "state": "queued", "duplicate": True},
        {"key": None, "error": {"field": "request", "reason": "must be a JSON object"}},
    ]
    assert redis.llen("rq:queue:smsq-default") == 1


def test_enqueue_raises_for_an_invalid_request(producer: Producer, redis: Redis) -> None:
    """enqueue() raises InvalidRequestError and writes nothing."""
    with pytest.raises(InvalidRequestError, match="sender: must be 3 to 11"):
        producer.enqueue({"key": "a", "text": "x", "to": ["0612345678"], "sender": "!"})
    assert redis.dbsize() == 0


def test_the_stored_message_holds_its_request_and_first_state(
    producer: Producer, store: MessageStore
) -> None:
    """The outcome store has the normalised request, segments and a 'queued' history entry."""
    producer.enqueue({"key": "k", "text": "ç" * 71, "to": ["0612345678"], "lane": "bulk"})
    record = store.get("k")
    assert record is not None
    assert (record.state, record.lane, record.segments, record.encoding) == (
        State.QUEUED,
        "bulk",
        2,
        "ucs2",
    )
    assert record.request["to"] == [{"phone": "33612345678", "params": []}]
    assert [h["state"] for h in record.history] == ["queued"]


def test_records_expire_after_the_outcome_ttl(redis: Redis) -> None:
    """Messages, their history and their job are kept for SMSQ_OUTCOME_TTL_S, not forever."""
    Producer(redis, ProducerSettings(outcome_ttl_s=3600)).enqueue(
        {"key": "k", "text": "x", "to": ["0612345678"]}
    )
    ttls = {key.decode(): redis.ttl(key) for key in redis.scan_iter("smsq:msg:*")}
    assert len(ttls) == 2
    assert all(3590 < ttl <= 3600 for ttl in ttls.values())


def test_unreachable_redis_gives_a_clear_error() -> None:
    """A producer whose Redis is down gets RedisUnavailableError, never a raw socket error."""
    port = free_port()
    producer = Producer(
        Redis(
            port=port,
            password="pw-1234",  # noqa: S106 - a test password
            socket_connect_timeout=0.5,
        )
    )
    with pytest.raises(RedisUnavailableError) as info:
        producer.enqueue({"key": "a", "text": "x", "to": ["0612345678"]})
    assert str(info.value) == (
        f"Redis at localhost:{port}/0 is unreachable (ConnectionError); retrying with the same "
        "keys is safe, duplicates are ignored"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "http://h:6379/0",
            "must start with redis://, rediss:// or unix:// (http://); "
            "e.g. redis://127.0.0.1:6379/0",
        ),
        (
            "h:6379",
            "must start with redis://, rediss:// or unix:// (no scheme); "
            "e.g. redis://127.0.0.1:6379/0",
        ),
        ("redis://:secret@h:99999/0", "has a port that is not a number from 1 to 65535"),
        ("redis://h:port/0", "has a port that is not a number from 1 to 65535"),
        ("redis://h:6379/zero", "has a database that is not a number (/0, /1...)"),
    ],
)
def test_a_bad_redis_url_is_one_clear_configuration_error(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        ProducerSettings.from_env({"REDIS_URL": url})
    assert (info.value.variable, info.value.reason) == ("REDIS_URL", reason)
    assert "secret" not in str(info.value)


def test_redis_cli_producer_sends_through_the_intake_list(
    redis_server: RedisServer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A backend with nothing but redis-cli RPUSHes JSON; a worker validates and sends it."""
    request = {"key": "php-1", "text": "Colis en route", "to": ["06 12 34 56 78"], "lane": "urgent"}
    for entry in (json.dumps(request), "{not json", json.dumps({"key": "bad", "to": ["x"]})):
        subprocess.run(
            ["redis-cli", "-p", str(redis_server.port), "RPUSH", "smsq:intake", entry],
            check=True,
            capture_output=True,
        )

    workers.run_burst()

    [sent] = sandbox.requests()
    assert sent["data"]["SMS"] == [{"MOBILEPHONE": "33612345678"}]
    record = store.get("php-1")
    assert record is not None
    assert (record.state, record.lane) == (State.SENT, "urgent")
    letters = sorted(((d.kind, d.key, d.reason) for d in store.dead_letters()), key=repr)
    assert letters == [("intake", "bad", "text: is required"), ("intake", None, "not valid JSON")]


def test_results_types() -> None:
    """Enqueued and Refused render as the CLI's JSON lines."""
    assert Enqueued("k", "m", State.QUEUED, False).as_dict() == {"key": "k", "state": "queued"}
    assert Refused("k", InvalidRequestError("to", "is required")).as_dict() == {
        "key": "k",
        "error": {"field": "to", "reason": "is required"},
    }


def test_job_ids_map_back_to_their_message() -> None:
    """First and requeued job ids name their message; foreign ids name none."""
    from producers import keys

    mid = keys.message_id("order-1")
    assert keys.message_id_of_job(keys.job_id(mid)) == mid
    assert keys.message_id_of_job(keys.requeued_job_id(mid, 3)) == mid
    assert keys.requeued_job_id(mid, 3) == f"smsq-{mid}-r3"
    assert keys.message_id_of_job(f"smsq-{mid}-x3") is None
    assert keys.message_id_of_job("evil") is None
