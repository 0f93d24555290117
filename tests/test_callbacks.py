"""Callbacks to producers over real sockets: signed events, retries, dead callbacks, and a
dispatcher killed mid-delivery."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.errors import CallbackSignatureError
from tests.helpers.callbacks import (
    CALLBACK_SECRET,
    LOOPBACK,
    SHOP_SECRET,
    TTL_S,
    Receiver,
    deliver_all,
    finish_sent,
    metric,
    settings,
)
from tests.helpers.processes import ROOT, wait_for
from worker.callbacks.dispatcher import Dispatcher
from worker.callbacks.outbox import dead_callbacks, event_body
from worker.cli.commands import main
from worker.dev.redis_server import RedisServer
from worker.send.retries import backoff_s, jittered_s
from worker.settings import Secret, Settings
from worker.store.ledger import Ledger


def test_event_body_is_compact_sorted_utf8_json() -> None:
    assert event_body({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for attempt, base in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)):
        waits = [jittered_s(backoff_s(attempt, initial_s=2.0, max_s=60.0)) for _ in range(200)]
        assert all(base * 0.5 <= w <= base for w in waits)


@pytest.mark.parametrize("jitter", [0.5, 1.0])
def test_by_default_an_event_outlives_a_day_long_receiver_outage(
    jitter: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default settings the age limit, not the attempt count, ends the retries: even
    with the shortest jittered waits, the attempts that fit in SMSQ_CALLBACK_MAX_AGE_S are
    fewer than SMSQ_CALLBACK_MAX_ATTEMPTS, and the last ones come 15-30 minutes apart."""
    monkeypatch.setattr("worker.send.retries.random.uniform", lambda low, high: jitter)
    defaults = Settings.from_env({})
    elapsed, attempt, waits = 0.0, 1, []
    while True:
        wait = jittered_s(
            backoff_s(
                attempt,
                initial_s=defaults.callback_initial_wait_s,
                max_s=defaults.callback_max_wait_s,
            )
        )
        if elapsed + wait > defaults.callback_max_age_s:
            break
        elapsed, attempt = elapsed + wait, attempt + 1
        waits.append(wait)
    assert attempt < defaults.callback_max_attempts
    assert waits[-1] == 1800.0 * jitter
    assert elapsed > defaults.callback_max_age_s - 1800.0


def test_final_event_is_signed_exact_and_carries_no_text(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    url = receiver.start()
    mid = finish_sent(redis, producer, "cb-final", callback_url=url, producer_login="shop")
    dispatcher = Dispatcher(settings(), redis)
    assert deliver_all(dispatcher) == ["delivered"]
    [got] = receiver.received
    assert got.headers["Content-Type"] == "application/json"
    event = got.verified(SHOP_SECRET)
    assert event == got.event
    assert got.headers["webhook-id"] == event["event_id"]
    assert len(event["event_id"]) == 32
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5
    assert "X-Smsq-Signature" not in got.headers
    assert event == {
        "event": "message.final",
        "event_id": event["event_id"],
        "key": "cb-final",
        "message_id": mid,
        "state": "sent",
        "provider_status": 100,
        "campaign_id": "cmp-1",
        "at": event["at"],
        "sms_ids": {"33612345678": "cb-final-a", "33698765432": "cb-final-b"},
        "invalid_numbers": [],
    }
    assert b"hello" not in got.body
    assert metric(redis, "callbacks_enqueued") == 1
    assert metric(redis, "callbacks_delivered") == 1
    assert redis.zcard(keys.CALLBACK_DUE) == 0
    assert redis.hlen(keys.CALLBACK_EVENTS) == 0


def test_without_callback_url_no_event_is_queued(redis: Redis, producer: Producer) -> None:
    finish_sent(redis, producer, "cb-none", callback_url=None)
    assert redis.zcard(keys.CALLBACK_DUE) == 0
    assert metric(redis, "callbacks_enqueued") == 0


def test_request_without_producer_is_signed_with_the_fallback_secret(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    url = receiver.start()
    finish_sent(redis, producer, "cb-fallback", callback_url=url)
    assert deliver_all(Dispatcher(settings(), redis)) == ["delivered"]
    [got] = receiver.received
    assert got.verified(CALLBACK_SECRET)["key"] == "cb-fallback"
    with pytest.raises(CallbackSignatureError):
        got.verified(SHOP_SECRET)


def test_no_secret_means_dead_never_unsigned(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    url = receiver.start()
    finish_sent(redis, producer, "cb-nosecret", callback_url=url)
    assert deliver_all(Dispatcher(settings(callback_secret=Secret("")), redis)) == ["dead"]
    assert receiver.received == []
    [dead] = dead_callbacks(redis)
    assert (dead.reason, dead.attempts, dead.http_status) == (
        "SMSQ_CALLBACK_SECRET is not set",
        1,
        None,
    )


def test_receiver_down_then_up_is_retried_until_delivered(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    with socket.socket() as probe:  # a port nobody listens on, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"
    finish_sent(redis, producer, "cb-down", callback_url=url, producer_login="shop")
    dispatcher = Dispatcher(settings(callback_max_attempts=100), redis)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: metric(redis, "callbacks_retried") >= 2, what="retries while down")
        assert receiver.received == []
        receiver.start(port)
        wait_for(lambda: metric(redis, "callbacks_delivered") == 1, what="delivery once up")
    finally:
        stop.set()
        thread.join(5)
    [got] = receiver.received
    assert got.event["key"] == "cb-down"
    assert got.verified(SHOP_SECRET)["key"] == "cb-down"
    assert redis.zcard(keys.CALLBACK_DUE) == 0
    assert dead_callbacks(redis) == []


def test_4xx_is_dead_at_once(redis: Redis, producer: Producer, receiver: Receiver) -> None:
    receiver.statuses = [410]
    url = receiver.start()
    finish_sent(redis, producer, "cb-gone", callback_url=url)
    assert deliver_all(Dispatcher(settings(), redis)) == ["dead"]
    assert len(receiver.received) == 1
    [dead] = dead_callbacks(redis)
    assert (dead.reason, dead.attempts, dead.http_status, dead.url) == (
        "HTTP 410: refused by the receiver",
        1,
        410,
        url,
    )
    assert dead.event["key"] == "cb-gone"
    assert metric(redis, "callbacks_dead") == 1
    assert redis.zcard(keys.CALLBACK_DUE) == 0


def test_an_unexpected_error_kills_the_event_not_the_dispatcher(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """A bug met while delivering one event makes that event dead with the error's name; the
    dispatcher thread goes on and delivers the next one."""
    url = receiver.start()
    finish_sent(redis, producer, "cb-bug", callback_url=url)
    finish_sent(redis, producer, "cb-next", callback_url=url)
    dispatcher = Dispatcher(settings(), redis)
    real_deliver = dispatcher.deliver
    calls: list[str] = []

    def deliver(pending: Any) -> str:
        calls.append(pending.event["key"])
        if pending.event["key"] == "cb-bug":
            raise KeyError("a bug")
        return real_deliver(pending)

    dispatcher.deliver = deliver  # type: ignore[method-assign]
    dispatcher.run(threading.Event(), burst=True)

    assert sorted(calls) == ["cb-bug", "cb-next"]
    [dead] = dead_callbacks(redis)
    assert (dead.event["key"], dead.reason, dead.attempts) == (
        "cb-bug",
        "unexpected error in smsq: KeyError",
        1,
    )
    assert [e["key"] for e in receiver.events()] == ["cb-next"]
    assert redis.zcard(keys.CALLBACK_DUE) == 0


def test_5xx_and_429_are_retried_up_to_max_attempts_then_dead(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    receiver.statuses = [429, 503, 500]
    url = receiver.start()
    finish_sent(redis, producer, "cb-5xx", callback_url=url)
    dispatcher = Dispatcher(settings(callback_max_attempts=3), redis)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: metric(redis, "callbacks_dead") == 1, what="dead after 3 attempts")
    finally:
        stop.set()
        thread.join(5)
    assert len(receiver.received) == 3
    assert len({r.event["event_id"] for r in receiver.received}) == 1
    assert {r.body for r in receiver.received} == {receiver.received[0].body}
    [dead] = dead_callbacks(redis)
    assert (dead.reason, dead.attempts, dead.http_status) == ("HTTP 500 after 3 attempts", 3, 500)
    assert metric(redis, "callbacks_retried") == 2


def test_dead_callbacks_are_listed_by_the_cli(
    redis: Redis,
    redis_server: RedisServer,
    producer: Producer,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    receiver.statuses = [404]
    finish_sent(redis, producer, "cb-cli", callback_url=receiver.start())
    deliver_all(Dispatcher(settings(), redis))
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    capsys.readouterr()
    assert main(["callbacks", "--dead", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["reason"], listed["attempts"], listed["event"]["key"]) == (
        "HTTP 404: refused by the receiver",
        1,
        "cb-cli",
    )


@pytest.mark.workers
def test_dispatcher_killed_mid_delivery_delivers_after_restart(
    redis: Redis, redis_server: RedisServer, producer: Producer, receiver: Receiver
) -> None:
    receiver.hold = True
    url = receiver.start()
    finish_sent(redis, producer, "cb-kill", callback_url=url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSQ_", "ALLMYSMS_"))}
    env.update(
        {
            "REDIS_URL": redis_server.url,
            "SMSQ_CALLBACK_SECRET": CALLBACK_SECRET,
            "SMSQ_CALLBACK_TIMEOUT_S": "1",
            "SMSQ_IDLE_WAIT_S": "0.1",
            "SMSQ_LOG_FORMAT": "json",
            "SMSQ_CALLBACK_ALLOWED_NETWORKS": LOOPBACK,
            "PYTHONPATH": str(ROOT),
        }
    )
    command = [sys.executable, "-m", "worker", "callbacks", "--threads", "1"]
    first = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: len(receiver.received) == 1, what="the first, held delivery")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        assert metric(redis, "callbacks_delivered") == 0
        assert redis.zcard(keys.CALLBACK_DUE) == 1
        second = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(
            lambda: metric(redis, "callbacks_delivered") == 1,
            timeout_s=30,
            what="delivery by the restarted dispatcher after the lease ran out",
        )
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
    assert second is not None
    assert second.returncode == 0
    first_body, second_body = (r.body for r in receiver.received)
    assert first_body == second_body
    assert json.loads(second_body)["key"] == "cb-kill"
    assert redis.zcard(keys.CALLBACK_DUE) == 0


def test_expired_message_sends_a_final_event_too(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    url = receiver.start()
    producer.enqueue(
        {
            "key": "cb-otp",
            "to": ["0612345678"],
            "text": "code 1234",
            "valid_for_s": 0.01,
            "callback_url": url,
        }
    )
    time.sleep(0.05)
    assert (
        Ledger(redis, ttl_s=TTL_S, worker_name="test").claim(keys.message_id("cb-otp")).outcome
        == "expired"
    )
    assert deliver_all(Dispatcher(settings(), redis)) == ["delivered"]
    [event] = receiver.events()
    assert (
        event["event"],
        event["key"],
        event["state"],
        event["provider_status"],
        event["sms_ids"],
        event["campaign_id"],
    ) == ("message.final", "cb-otp", "expired", None, {}, None)
