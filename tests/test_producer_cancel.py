"""``producers.cancel``: a producer cancels its own queued messages with the worker's own
compare-and-set script (no ``worker`` import); scheduled ones are refused with where to go."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial

import httpx
import pytest
from redis import Redis

import producers
from producers import acl, keys
from producers.cancel_queued import NO_RIGHTS, SCHEDULED_WHY, Canceller
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.errors import ConfigError, InvalidInputError
from producers.ledger_finish_lua import LEDGER_FINISH_LUA
from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import API_KEY, LOGIN, ROOT
from worker.allmysms.client import AllMySmsClient
from worker.dev.redis_server import RedisServer
from worker.sandbox import SandboxProvider
from worker.send.retries import send_retrying
from worker.send.sender import Sender
from worker.settings import Secret, Settings
from worker.store import lua
from worker.store.control import Switch
from worker.store.ledger import Ledger


TTL_S = 3600


def request(key: str, **fields: object) -> dict[str, object]:
    return {"key": key, "text": f"msg {key}", "to": ["0612345678"], **fields}


@pytest.fixture
def canceller(redis: Redis) -> Canceller:
    return Canceller(redis, ProducerSettings())


@pytest.fixture
def sender(redis: Redis, sandbox: SandboxProvider) -> Iterator[Sender]:
    client = AllMySmsClient(
        base_url=sandbox.base_url, login=LOGIN, api_key=Secret(API_KEY), timeout=httpx.Timeout(5)
    )
    settings = Settings.from_env({"ALLMYSMS_LOGIN": LOGIN, "ALLMYSMS_API_KEY": API_KEY})
    yield Sender(
        ledger=Ledger(redis, ttl_s=TTL_S, worker_name="w-test"),
        client=client,
        retrying=partial(send_retrying, settings),
        switch=Switch(redis),
    )
    client.close()


def test_the_script_copy_is_the_workers_ledger_finish() -> None:
    """producers/ledger_finish_lua.py is current (else: scripts/render_producer_lua.py)."""
    assert lua.load("ledger_finish") == LEDGER_FINISH_LUA, (
        "stale copy: run .venv/bin/python scripts/render_producer_lua.py"
    )


def test_a_queued_message_ends_cancelled_and_is_never_sent(
    redis: Redis,
    store: MessageStore,
    sandbox: SandboxProvider,
    sender: Sender,
    canceller: Canceller,
) -> None:
    Producer(redis, ProducerSettings()).enqueue(
        request("p-1", callback_url="https://shop.example/cb")
    )

    done = canceller.cancel("p-1", by="shop-backend", why="order refunded")
    again = canceller.cancel("p-1", by="shop-backend", why="order refunded")
    result = sender.send(keys.message_id("p-1"))

    assert (done.key, done.action, done.detail) == (
        "p-1",
        "cancelled",
        "cancelled by shop-backend: order refunded",
    )
    assert (again.action, again.detail) == ("refused", "is already cancelled")
    assert result.state == "cancelled"
    assert sandbox.requests() == []
    record = store.get("p-1")
    assert record is not None
    assert record.state is State.CANCELLED
    assert [(h["state"], h.get("by")) for h in record.history] == [
        ("queued", None),
        ("cancelled", "shop-backend"),
    ]
    assert int(redis.hget(keys.METRICS, "state:cancelled") or 0) == 1
    assert redis.hlen(keys.CALLBACK_EVENTS) == 1  # the message.final event, as smsq cancel


def test_scheduled_sent_and_missing_messages_are_refused_with_the_reason(
    redis: Redis, store: MessageStore, sender: Sender, canceller: Canceller
) -> None:
    producer = Producer(redis, ProducerSettings())
    producer.enqueue(request("p-later", send_at="2999-01-01T10:00:00+01:00"))
    producer.enqueue(request("p-now"))
    sender.send(keys.message_id("p-later"))
    sender.send(keys.message_id("p-now"))

    answers = [canceller.cancel(k, by="shop", why="x") for k in ("p-later", "p-now", "p-nope")]

    assert [(a.action, a.detail) for a in answers] == [
        ("refused", SCHEDULED_WHY),
        ("refused", "is sent: AllMySMS accepted it; it cannot be cancelled"),
        ("refused", "no message with that key"),
    ]
    assert [store.get(k).state for k in ("p-later", "p-now")] == [State.SCHEDULED, State.SENT]  # type: ignore[union-attr]


def test_a_split_message_cancels_its_queued_parts(
    redis: Redis, store: MessageStore, sender: Sender, canceller: Canceller
) -> None:
    Producer(redis, ProducerSettings(chunk_recipients=4)).enqueue(
        {"key": "big", "text": "Hi", "to": [f"06123{n:05d}" for n in range(10)]}
    )
    sender.send(keys.message_id("big#1/3"))

    done = canceller.cancel("big", by="shop", why="x")

    assert (done.action, done.parts) == ("cancelled", ("big#2/3", "big#3/3"))
    assert done.detail == (
        "cancelled 2 of 3 parts: big#2/3, big#3/3; not cancelled: big#1/3 (is sent: AllMySMS "
        "accepted it; it cannot be cancelled)"
    )
    assert store.get("big").state is State.PARTIAL  # type: ignore[union-attr]


@pytest.mark.parametrize(("by", "why", "field"), [("", "x", "by"), ("shop", "  ", "why")])
def test_blank_by_or_why_is_a_clear_error(
    redis: Redis, canceller: Canceller, by: str, why: str, field: str
) -> None:
    Producer(redis, ProducerSettings()).enqueue(request("p-blank"))
    with pytest.raises(InvalidInputError) as caught:
        canceller.cancel("p-blank", by=by, why=why)
    assert str(caught.value) == f"{field}: must say who cancels and why (it is recorded)"
    assert MessageStore(redis).get("p-blank").state is State.QUEUED  # type: ignore[union-attr]


def test_a_producer_cancel_racing_a_claim_ends_in_exactly_one_of_them(
    redis: Redis, store: MessageStore, canceller: Canceller
) -> None:
    producer = Producer(redis, ProducerSettings())
    ledger = Ledger(redis, ttl_s=TTL_S, worker_name="w-race")
    for n in range(100):
        key = f"race-{n}"
        producer.enqueue(request(key))
        start = threading.Barrier(2)
        claims: list[str] = []
        thread = threading.Thread(target=_claim, args=(ledger, key, start, claims))
        thread.start()
        start.wait()
        done = canceller.cancel(key, by="shop", why="race")
        thread.join()

        state = store.get(key).state  # type: ignore[union-attr]
        if done.cancelled:
            assert (state, claims) == (State.CANCELLED, ["cancelled"])
        else:
            assert (state, claims) == (State.SENDING, ["claimed"])
            assert done.detail in (SENDING_WHY, "state changed meanwhile to sending")


def _claim(ledger: Ledger, key: str, start: threading.Barrier, claims: list[str]) -> None:
    start.wait()
    claims.append(ledger.claim(keys.message_id(key)).outcome)


SENDING_WHY = (
    "is sending: a worker claimed it and may be talking to AllMySMS; it cannot be cancelled any "
    "more"
)


def test_producers_cancel_reads_the_environment(
    redis_server: RedisServer, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setattr(producers, "_default", None)
    producers.enqueue(request("env-1"))

    done = producers.cancel("env-1", by="shop", why="x")

    assert done.as_dict() == {
        "key": "env-1",
        "action": "cancelled",
        "detail": "cancelled by shop: x",
    }
    assert producers.status("env-1").state is State.CANCELLED  # type: ignore[union-attr]
    producers._producer().connection.close()


def test_producers_cancel_loads_no_worker_module() -> None:
    probe = (
        "import sys, producers, producers.cancel_queued\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('worker', 'httpx')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_python_producer_acl_user_is_refused_before_anything_changes(
    redis: Redis, redis_server: RedisServer
) -> None:
    """Its ACL lacks what the script runs: a clear ConfigError, and the message is untouched
    (a script stopped half-way by NOPERM would keep its first write, the state)."""
    user, password = "acl-test-cancel", "a-long-enough-password-1234"
    redis.execute_command(*acl.setuser_args("python-producer", user, password))  # type: ignore[no-untyped-call]
    tenant = Redis(port=redis_server.port, username=user, password=password)
    try:
        Producer(tenant, ProducerSettings()).enqueue(request("acl-1"))
        before = redis.hgetall(keys.message(keys.message_id("acl-1")))
        with pytest.raises(ConfigError) as caught:
            Canceller(tenant, ProducerSettings()).cancel("acl-1", by="shop", why="x")
        assert str(caught.value) == f"REDIS_URL: {NO_RIGHTS}"
        assert redis.hgetall(keys.message(keys.message_id("acl-1"))) == before
        assert redis.llen(keys.history(keys.message_id("acl-1"))) == 1
    finally:
        tenant.close()
        redis.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]
