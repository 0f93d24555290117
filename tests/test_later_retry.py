"""Later retry rounds: a message whose attempts provably never reached AllMySMS waits, queued
with its next attempt time, and is sent again later (exactly once), until the window is spent."""

from __future__ import annotations

import json
import os
import signal
import socket

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.admin import admin_settings, log_in
from tests.helpers.crashes import FAST
from tests.helpers.processes import API_KEY, LOGIN, Workers, wait_for
from worker.admin import create_app
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider
from worker.send.retries import LaterRetry


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (yet): every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _later_env(port: int, **overrides: str) -> dict[str, str]:
    env = {
        **FAST,
        "ALLMYSMS_BASE_URL": f"http://127.0.0.1:{port}/http/9.0",
        "SMSQ_SEND_ATTEMPTS": "2",
        "SMSQ_LATER_RETRY_FOR_S": "60",
        "SMSQ_LATER_RETRY_FIRST_WAIT_S": "1",
        "SMSQ_LATER_RETRY_MAX_WAIT_S": "1",
    }
    env.update(overrides)
    return env


def _parked(store: MessageStore, key: str) -> bool:
    record = store.get(key)
    return record is not None and record.state is State.QUEUED and bool(record.next_attempt_at)


def _later_rounds(store: MessageStore, key: str) -> list[dict[str, object]]:
    record = store.get(key)
    assert record is not None
    return [entry for entry in record.history if "round" in entry]


def test_due_is_doubling_and_bounded_by_the_window() -> None:
    later = LaterRetry(for_s=100, first_wait_s=10, max_wait_s=40)

    assert later.due(rounds=0, since=None, now=1000.0) == 1010.0
    assert later.due(rounds=1, since=1000.0, now=1020.0) == 1040.0
    assert later.due(rounds=5, since=1000.0, now=1050.0) == 1090.0
    assert later.due(rounds=5, since=1000.0, now=1061.0) is None
    assert LaterRetry(for_s=0).due(rounds=0, since=None, now=1000.0) is None


def test_unreachable_message_is_parked_shown_then_sent_exactly_once(
    closed_port: int, producer: Producer, store: MessageStore, redis: Redis, workers: Workers
) -> None:
    """Connection refused: queued with a next attempt, shown by status; sent once AllMySMS is up."""
    producer.enqueue({"key": "later-ok", "text": "Hi", "to": ["0612345678"]})
    # Rounds 4 s apart: the two status commands below run well within one (under load too).
    workers.start(
        **_later_env(
            closed_port, SMSQ_LATER_RETRY_FIRST_WAIT_S="4", SMSQ_LATER_RETRY_MAX_WAIT_S="4"
        )
    )

    wait_for(lambda: _parked(store, "later-ok"), what="the message parked for a later round")
    record = store.get("later-ok")
    assert record is not None
    text = workers.smsq("status", "later-ok")
    assert text.returncode == 0
    assert (
        f"next attempt at {record.next_attempt_at} (later retry round {record.later_rounds}: "
        "AllMySMS was not reached, nothing was sent)\n"
    ) in text.stdout
    shown = json.loads(workers.smsq("status", "later-ok", "--json").stdout)
    assert shown["state"] == "queued"
    assert (shown["attempts"], shown["error"]) == (2, "ConnectError: AllMySMS was not reached")
    assert shown["next_attempt_at"] == record.next_attempt_at

    with SandboxProvider(port=closed_port, login=LOGIN, api_key=API_KEY) as provider:
        wait_for(
            lambda: (r := store.get("later-ok")) is not None and r.state is State.SENT,
            timeout_s=30,
            what="the later round to send it",
        )
        assert len(provider.requests()) == 1
    record = store.get("later-ok")
    assert record is not None
    assert record.next_attempt_at is None
    assert record.later_rounds >= 1
    assert len(_later_rounds(store, "later-ok")) == record.later_rounds
    assert redis.zcard(keys.LATER) == 0
    assert store.dead_letters() == []


def test_window_spent_ends_failed_with_every_round_in_history(
    closed_port: int, producer: Producer, store: MessageStore, redis: Redis, workers: Workers
) -> None:
    producer.enqueue({"key": "later-fail", "text": "Hi", "to": ["0612345678"]})
    workers.start(
        **_later_env(
            closed_port,
            SMSQ_LATER_RETRY_FOR_S="2.9",
            SMSQ_LATER_RETRY_FIRST_WAIT_S="1",
            SMSQ_LATER_RETRY_MAX_WAIT_S="1",
        )
    )

    wait_for(
        lambda: (r := store.get("later-fail")) is not None and r.state is State.FAILED,
        timeout_s=30,
        what="the message to fail after the window",
    )
    record = store.get("later-fail")
    assert record is not None
    rounds = _later_rounds(store, "later-fail")
    # Two waits of 1 s (plus under 0.9 s of sends and reconciler passes) fit in 2.9 s, a
    # third does not: the third send fails it.
    assert [entry["round"] for entry in rounds] == [1, 2]
    assert record.later_rounds == 2
    assert record.attempts == 2
    assert record.error == "ConnectError: AllMySMS was not reached"
    assert record.history[-1]["reason"].startswith(
        "AllMySMS unreachable after 2 attempts in each of 3 rounds over "
    )
    [letter] = store.dead_letters()
    assert (letter.key, letter.state) == ("later-fail", "failed")
    assert redis.zcard(keys.LATER) == 0


@pytest.mark.parametrize(
    ("fault", "state"),
    [({"action": "drop"}, State.UNKNOWN), ({"action": "status", "status": 106}, State.REJECTED)],
)
def test_unknown_and_provider_statuses_are_never_retried_later(
    fault: dict[str, object],
    state: State,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    redis: Redis,
    workers: Workers,
) -> None:
    sandbox.add_fault(fault)
    producer.enqueue({"key": "no-later", "text": "Hi", "to": ["0612345678"]})

    workers.run_burst(**_later_env(sandbox.port))

    record = store.get("no-later")
    assert record is not None
    assert (record.state, record.later_rounds, record.next_attempt_at) == (state, 0, None)
    assert len(sandbox.requests()) == 1
    assert redis.zcard(keys.LATER) == 0


def test_cancel_during_the_wait_wins_and_nothing_is_sent(
    closed_port: int, producer: Producer, store: MessageStore, redis: Redis, workers: Workers
) -> None:
    producer.enqueue({"key": "later-cancel", "text": "Hi", "to": ["0612345678"]})
    workers.start(**_later_env(closed_port, SMSQ_LATER_RETRY_FIRST_WAIT_S="3"))
    wait_for(lambda: _parked(store, "later-cancel"), what="the message parked")
    stats = json.loads(workers.smsq("stats", "--json").stdout)
    assert (stats["waiting_later"], stats["later_parked"]) == (1, 1)

    done = workers.smsq("cancel", "later-cancel", "--why", "test")
    assert done.returncode == 0, done.stdout + done.stderr

    with SandboxProvider(port=closed_port, login=LOGIN, api_key=API_KEY) as provider:
        wait_for(lambda: redis.zcard(keys.LATER) == 0, timeout_s=10, what="the round to be due")
        record = store.get("later-cancel")
        assert record is not None
        assert (record.state, record.next_attempt_at) == (State.CANCELLED, None)
        assert provider.requests() == []


def test_worker_killed_during_the_wait_loses_nothing(
    closed_port: int, producer: Producer, store: MessageStore, workers: Workers
) -> None:
    producer.enqueue({"key": "later-kill", "text": "Hi", "to": ["0612345678"]})
    first = workers.start(**_later_env(closed_port, SMSQ_LATER_RETRY_FIRST_WAIT_S="2"))
    wait_for(lambda: _parked(store, "later-kill"), what="the message parked")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    with SandboxProvider(port=closed_port, login=LOGIN, api_key=API_KEY) as provider:
        workers.start(**_later_env(closed_port))
        wait_for(
            lambda: (r := store.get("later-kill")) is not None and r.state is State.SENT,
            timeout_s=30,
            what="another worker to send it in the later round",
        )
        assert len(provider.requests()) == 1


def test_no_later_round_past_valid_for_s(
    closed_port: int, producer: Producer, store: MessageStore, redis: Redis, workers: Workers
) -> None:
    """A round that would be due after the message's validity is not parked: failed at once."""
    producer.enqueue({"key": "later-valid", "text": "Hi", "to": ["0612345678"], "valid_for_s": 30})

    workers.run_burst(
        **_later_env(
            closed_port, SMSQ_LATER_RETRY_FIRST_WAIT_S="40", SMSQ_LATER_RETRY_MAX_WAIT_S="40"
        )
    )

    record = store.get("later-valid")
    assert record is not None
    assert (record.state, record.later_rounds, record.attempts) == (State.FAILED, 0, 2)
    assert record.history[-1]["reason"] == "AllMySMS unreachable after 2 attempts"
    assert redis.zcard(keys.LATER) == 0


def test_requeue_of_a_failed_message_gets_a_fresh_window(
    closed_port: int, producer: Producer, store: MessageStore, redis: Redis, workers: Workers
) -> None:
    """``smsq dlq requeue`` after the window: later rounds start again from the first."""
    producer.enqueue({"key": "later-again", "text": "Hi", "to": ["0612345678"]})
    env = _later_env(closed_port, SMSQ_LATER_RETRY_FOR_S="1.5")
    workers.start(**env)
    wait_for(
        lambda: (r := store.get("later-again")) is not None and r.state is State.FAILED,
        timeout_s=20,
        what="the message to fail after the window",
    )

    done = workers.smsq("dlq", "requeue", "later-again", "--why", "AllMySMS is back")
    assert done.returncode == 0, done.stdout + done.stderr

    wait_for(lambda: _parked(store, "later-again"), what="a first later round again")
    record = store.get("later-again")
    assert record is not None
    assert record.later_rounds == 1
    assert [entry["round"] for entry in _later_rounds(store, "later-again")] == [1, 1]


def test_admin_message_page_shows_the_next_attempt(
    closed_port: int,
    redis_server: RedisServer,
    producer: Producer,
    store: MessageStore,
    redis: Redis,
    workers: Workers,
) -> None:
    producer.enqueue({"key": "later-admin", "text": "Hi", "to": ["0612345678"]})
    workers.start(
        **_later_env(
            closed_port, SMSQ_LATER_RETRY_FIRST_WAIT_S="30", SMSQ_LATER_RETRY_MAX_WAIT_S="30"
        )
    )
    wait_for(lambda: _parked(store, "later-admin"), what="the message parked")
    record = store.get("later-admin")
    assert record is not None

    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port()) as base_url, httpx.Client(base_url=base_url) as client:
        log_in(client)
        page = client.get("/messages/later-admin").text

    assert (
        f'<dd id="next-attempt">{record.next_attempt_at} (later retry round 1: AllMySMS was not '
        "reached, nothing was sent)</dd>"
    ) in page
