"""End to end: producers → Redis → real ``smsq worker`` processes → sandbox over sockets."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import Workers, wait_for
from worker.allmysms.codes import STATUSES
from worker.sandbox import SandboxProvider
from worker.send.sender import PAUSE_STATUSES
from worker.store.control import Switch


def sent_requests(sandbox: SandboxProvider) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests() if r["data"] is not None]


def test_personalised_multi_recipient_message_is_sent_once(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """One request carries MESSAGE, TPOA, DYNAMIC, CAMPAIGN_NAME and PARAM_n per recipient."""
    producer.enqueue(
        {
            "key": "welcome-1",
            "sender": "Shop42",
            "campaign": "welcome",
            "text": "Hi #param_1#, code #param_2#",
            "to": [
                {"phone": "0612345678", "params": ["Ann", "A1"]},
                {"phone": "+33 6 98 76 54 32", "params": ["Bo", "B2"]},
            ],
        }
    )

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    [request] = sandbox.requests()
    assert request["method"] == "POST"
    assert request["encoding"] == "form"
    assert request["api_key_ok"] is True
    assert request["returnformat"] == "json"
    assert request["data"] == {
        "MESSAGE": "Hi #param_1#, code #param_2#",
        "TPOA": "Shop42",
        "DYNAMIC": "2",
        "CAMPAIGN_NAME": "welcome",
        "CLIMSGID": keys.message_id("welcome-1"),
        "SMS": [
            {"MOBILEPHONE": "33612345678", "PARAM_1": "Ann", "PARAM_2": "A1"},
            {"MOBILEPHONE": "33698765432", "PARAM_1": "Bo", "PARAM_2": "B2"},
        ],
    }
    record = store.get("welcome-1")
    assert record is not None
    assert record.state is State.SENT
    assert record.provider_status == 100
    assert set(record.sms_ids) == {"33612345678", "33698765432"}
    assert record.nb_sms == 2
    assert record.credits_used == 30
    assert record.attempts == 1
    assert [h["state"] for h in record.history] == ["queued", "sending", "sent"]


def test_deferred_message_is_scheduled_with_paris_date(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A future send_at becomes DATE in Europe/Paris time and status 101 ends 'scheduled'."""
    send_at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    producer.enqueue(
        {"key": "later", "text": "Reminder", "to": ["0612345678"], "send_at": send_at.isoformat()}
    )

    workers.run_burst()

    [request] = sandbox.requests()
    paris = send_at.astimezone(ZoneInfo("Europe/Paris")).strftime("%Y-%m-%d %H:%M:%S")
    assert request["data"]["DATE"] == paris
    assert request["status"] == 101
    record = store.get("later")
    assert record is not None
    assert record.state is State.SCHEDULED
    assert record.provider_status == 101


def test_invalid_numbers_are_refused_locally_and_by_the_provider(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A malformed number never reaches AllMySMS; one it refuses (113) makes the send partial."""
    result = producer.enqueue(
        {"key": "mixed", "text": "Hello", "to": ["0612345678", "06 12", "0611999999"]}
    )
    assert result.refused_numbers == ({"field": "to[1]", "phone": "06 12", "reason": "too short"},)

    workers.run_burst()

    [request] = sandbox.requests()
    assert [s["MOBILEPHONE"] for s in request["data"]["SMS"]] == ["33612345678", "33611999999"]
    record = store.get("mixed")
    assert record is not None
    assert record.state is State.PARTIAL
    assert record.provider_status == 113
    assert record.invalid_numbers == ["33611999999"]
    assert list(record.sms_ids) == ["33612345678"]
    assert record.refused_numbers == [{"field": "to[1]", "phone": "06 12", "reason": "too short"}]


def test_stop_listed_number_in_a_status_100_answer_makes_the_send_partial(
    producer: Producer, store: MessageStore, workers: Workers
) -> None:
    """invalidNumbers in a status 100 answer is recorded and the message ends 'partial'."""
    producer.enqueue({"key": "stop", "text": "Offer", "to": ["0612345678", "0611888888"]})

    workers.run_burst()

    record = store.get("stop")
    assert record is not None
    assert (record.state, record.provider_status) == (State.PARTIAL, 100)
    assert record.invalid_numbers == ["33611888888"]


@pytest.mark.parametrize(
    "code", sorted(c for c in STATUSES if c >= 102 and c not in PAUSE_STATUSES)
)
def test_every_business_status_is_final_and_never_retried(
    code: int, producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Statuses 102-118 end in their table state after exactly one request."""
    sandbox.add_fault({"action": "status", "status": code, "times": -1})
    producer.enqueue({"key": f"status-{code}", "text": "Hi", "to": ["0612345678"]})

    workers.run_burst()

    assert len(sandbox.requests()) == 1
    record = store.get(f"status-{code}")
    assert record is not None
    assert record.state is STATUSES[code].state
    assert record.provider_status == code
    assert record.attempts == 1
    letters = {d.key: d for d in store.dead_letters()}
    if STATUSES[code].state is State.REJECTED:
        assert letters[f"status-{code}"].provider_status == code
        assert letters[f"status-{code}"].reason.startswith(f"{code} ")
    else:
        assert letters == {}


def test_connection_refused_then_recovery_sends_exactly_once(
    producer: Producer, store: MessageStore, workers: Workers
) -> None:
    """Connect failures are retried with back-off until the provider listens: one request."""
    from worker.dev.redis_server import free_port

    port = free_port()
    late = SandboxProvider(login="smsq-test", api_key="sk-test-6f1d2c9a8b7e4d3c2b1a", port=port)
    producer.enqueue({"key": "late", "text": "Hi", "to": ["0612345678"]})
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "--burst"],
        env=workers.env(
            ALLMYSMS_BASE_URL=f"http://127.0.0.1:{port}/http/9.0",
            SMSQ_SEND_ATTEMPTS="40",
            SMSQ_RETRY_INITIAL_WAIT_S="0.1",
            SMSQ_RETRY_MAX_WAIT_S="0.1",
            SMSQ_SEND_MAX_WAIT_S="20",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.5)
        late.start()
        out, _ = proc.communicate(timeout=30)
    finally:
        late.stop()
    assert proc.returncode == 0, out
    assert len(late.requests()) == 1
    record = store.get("late")
    assert record is not None
    assert record.state is State.SENT
    assert record.attempts > 1
    assert '"event": "sms.send.retry_scheduled"' in out


def test_connection_refused_past_the_budget_fails_without_any_request(
    producer: Producer, store: MessageStore, workers: Workers
) -> None:
    """When AllMySMS never answers a connect, the message ends 'failed': provably not sent."""
    from worker.dev.redis_server import free_port

    producer.enqueue({"key": "down", "text": "Hi", "to": ["0612345678"]})

    workers.run_burst(
        ALLMYSMS_BASE_URL=f"http://127.0.0.1:{free_port()}/http/9.0", SMSQ_SEND_ATTEMPTS="3"
    )

    record = store.get("down")
    assert record is not None
    assert record.state is State.FAILED
    assert record.attempts == 3
    assert record.error == "ConnectError: AllMySMS was not reached"
    [letter] = store.dead_letters()
    assert (letter.key, letter.state) == ("down", "failed")


def test_read_timeout_ends_unknown_and_is_never_resent(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A provider slower than the read timeout got the request: 'unknown', one request ever."""
    sandbox.add_fault({"action": "delay", "delay_ms": 1500})
    producer.enqueue({"key": "slow", "text": "Hi", "to": ["0612345678"]})

    workers.run_burst(SMSQ_HTTP_READ_TIMEOUT_S="0.3")
    producer.enqueue({"key": "slow", "text": "Hi", "to": ["0612345678"]})
    workers.run_burst(SMSQ_HTTP_READ_TIMEOUT_S="0.3")

    assert len(sandbox.requests()) == 1
    record = store.get("slow")
    assert record is not None
    assert record.state is State.UNKNOWN
    assert record.attempts == 1
    assert record.error == "ReadTimeout after the request was sent"
    [letter] = store.dead_letters()
    assert (letter.key, letter.state) == ("slow", "unknown")


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ("html502", "AllMySMS answered HTTP 502"),
        ("truncated", "AllMySMS answered HTTP 200 with a body that is not JSON"),
        ("drop", "RemoteProtocolError after the request was sent"),
    ],
)
def test_ambiguous_answers_end_unknown_after_one_request(
    action: str,
    error: str,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """A 502 page, truncated JSON or a dropped connection is 'unknown', never retried."""
    sandbox.add_fault({"action": action})
    producer.enqueue({"key": action, "text": "Hi", "to": ["0612345678"]})

    workers.run_burst()

    assert len(sandbox.requests()) == 1
    record = store.get(action)
    assert record is not None
    assert (record.state, record.attempts, record.error) == (State.UNKNOWN, 1, error)


def test_expired_one_time_code_is_never_sent(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A code whose valid_for_s ran out before the send started ends 'expired', no request."""
    producer.enqueue(
        {
            "key": "otp",
            "text": "Code 1234",
            "to": ["0612345678"],
            "lane": "urgent",
            "valid_for_s": 0.2,
        }
    )
    time.sleep(0.4)

    workers.run_burst()

    assert sandbox.requests() == []
    record = store.get("otp")
    assert record is not None
    assert record.state is State.EXPIRED
    assert [h["state"] for h in record.history] == ["queued", "expired"]
    [letter] = store.dead_letters()
    assert (letter.key, letter.state) == ("otp", "expired")


def test_same_key_before_and_after_the_send_reaches_the_provider_once(
    producer: Producer,
    redis: Redis,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """Enqueueing a key twice before the send and once after it gives one job and one request."""
    first = producer.enqueue({"key": "dup", "text": "Hi", "to": ["0612345678"]})
    again = producer.enqueue({"key": "dup", "text": "Other text", "to": ["0698765432"]})
    assert (first.duplicate, again.duplicate) == (False, True)
    assert redis.llen("rq:queue:smsq-default") == 1

    workers.run_burst()
    after = producer.enqueue({"key": "dup", "text": "Hi", "to": ["0612345678"]})
    workers.run_burst()

    assert (after.duplicate, after.state) == (True, State.SENT)
    [request] = sandbox.requests()
    assert request["data"]["MESSAGE"] == "Hi"


def test_urgent_lane_is_drained_before_default_and_bulk(
    producer: Producer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A worker on all lanes takes urgent first, then default, then bulk (one slot, so the
    provider sees them in the order they were taken)."""
    producer.enqueue_many(
        [
            {"key": "b", "text": "bulk", "to": ["0612345678"], "lane": "bulk"},
            {"key": "d", "text": "default", "to": ["0612345678"]},
            {"key": "u", "text": "urgent", "to": ["0612345678"], "lane": "urgent"},
        ]
    )

    workers.run_burst(SMSQ_SEND_SLOTS="1")

    assert [r["data"]["MESSAGE"] for r in sandbox.requests()] == ["urgent", "default", "bulk"]


def test_lanes_option_limits_the_queues_a_worker_drains(
    producer: Producer, redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    """``--lanes bulk`` leaves other lanes' messages queued."""
    producer.enqueue_many(
        [
            {"key": "b", "text": "bulk", "to": ["0612345678"], "lane": "bulk"},
            {"key": "u", "text": "urgent", "to": ["0612345678"], "lane": "urgent"},
        ]
    )

    workers.run_burst("--lanes", "bulk")

    assert [r["data"]["MESSAGE"] for r in sandbox.requests()] == ["bulk"]
    assert redis.llen("rq:queue:smsq-urgent") == 1


def test_one_keep_alive_connection_serves_every_message_of_a_worker(
    producer: Producer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A worker process with one send slot reuses one HTTP connection for all its sends."""
    producer.enqueue_many([{"key": f"k{i}", "text": "Hi", "to": ["0612345678"]} for i in range(5)])

    workers.run_burst(SMSQ_SEND_SLOTS="1")

    assert len(sandbox.requests()) == 5
    assert sandbox.connections_accepted == 1


def test_send_slots_keep_that_many_requests_in_flight_on_as_many_connections(
    producer: Producer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Four slots and a 300 ms provider: four requests overlap, never a fifth; each slot keeps
    its keep-alive connection, so 12 messages open exactly 4 connections."""
    sandbox.add_fault({"action": "delay", "delay_ms": 300, "times": 12})
    producer.enqueue_many([{"key": f"k{i}", "text": "Hi", "to": ["0612345678"]} for i in range(12)])

    run = workers.run_burst(SMSQ_SEND_SLOTS="4")

    assert run.returncode == 0, run.log
    assert len(sandbox.requests()) == 12
    assert sandbox.connections_accepted == 4
    arrivals = sorted(datetime.fromisoformat(r["at"]).timestamp() for r in sandbox.requests())
    overlapping = [sum(1 for t in arrivals if start <= t < start + 0.25) for start in arrivals]
    assert max(overlapping) == 4


def test_supervised_worker_processes_share_the_lanes(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """``--processes 3 --burst`` runs three workers that send every message exactly once."""
    producer.enqueue_many(
        [{"key": f"m{i}", "text": f"Hi {i}", "to": ["0612345678"]} for i in range(30)]
    )

    run = workers.run_burst("--processes", "3")

    assert run.returncode == 0, run.log
    messages = sorted(r["data"]["MESSAGE"] for r in sandbox.requests())
    assert messages == sorted(f"Hi {i}" for i in range(30))
    assert {store.get(f"m{i}").state for i in range(30)} == {State.SENT}  # type: ignore[union-attr]
    started = [e for e in run.events() if "started with PID" in e["event"]]
    assert len(started) == 3
    assert [e["event"] for e in run.events()][-1] == "sms.supervisor.stopped"


@pytest.mark.parametrize("code", sorted(PAUSE_STATUSES))
def test_account_errors_pause_every_lane_and_lose_nothing(
    code: int,
    producer: Producer,
    redis: Redis,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """102/103/104: the message goes back to the front of its lane, every lane pauses, and after
    ``smsq resume`` everything is sent once. One send slot, so the second message is not
    already in flight when the first answer arrives."""
    sandbox.add_fault({"action": "status", "status": code})
    producer.enqueue_many(
        [
            {"key": f"first-{code}", "text": "Hi", "to": ["0612345678"]},
            {"key": f"second-{code}", "text": "Hi", "to": ["0612345678"], "lane": "urgent"},
        ]
    )

    paused = workers.run_burst(SMSQ_SEND_SLOTS="1")

    assert paused.returncode == 0, paused.log
    assert len(sandbox.requests()) == 1
    assert [p.lane for p in Switch(redis).paused()] == ["*"]
    assert (
        next(e for e in paused.events() if e["event"] == "sms.lanes.paused")["provider_status"]
        == code
    )
    urgent, waiting = store.get(f"second-{code}"), store.get(f"first-{code}")
    assert urgent is not None
    assert waiting is not None
    assert [h["state"] for h in urgent.history] == ["queued", "sending", "queued"]
    assert [h["state"] for h in waiting.history] == ["queued"]
    assert urgent.history[-1]["by"].startswith("worker ")
    assert store.dead_letters() == []

    resumed = workers.smsq("resume")
    workers.run_burst()

    assert resumed.returncode == 0
    assert resumed.stdout == "resumed all lanes\n"
    assert [r["status"] for r in sandbox.requests()] == [code, 100, 100]
    for key in (f"first-{code}", f"second-{code}"):
        record = store.get(key)
        assert record is not None
        assert record.state is State.SENT


def test_urgent_message_behind_ten_thousand_bulk_ones_goes_out_within_a_second(
    producer: Producer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A running worker busy with a 10,000-message bulk backlog sends a new urgent one next."""
    producer.enqueue_many(
        [
            {"key": f"bulk-{i}", "text": "bulk", "to": ["0612345678"], "lane": "bulk"}
            for i in range(10_000)
        ]
    )
    workers.start(SMSQ_IDLE_WAIT_S="0.2")
    wait_for(lambda: len(sandbox.requests()) >= 20, what="the bulk lane to start")

    enqueued_at = time.monotonic()
    producer.enqueue({"key": "otp", "text": "urgent", "to": ["0612345678"], "lane": "urgent"})
    wait_for(
        lambda: any(r["data"]["MESSAGE"] == "urgent" for r in sandbox.requests()),
        timeout_s=5,
        what="the urgent message",
    )

    assert time.monotonic() - enqueued_at < 1.0
