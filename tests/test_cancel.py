"""``smsq cancel``: a queued message (or the queued parts of a split one) ends ``cancelled``,
never sent, with who and why; anything else is refused with the reason. A cancel that meets a
worker's claim ends in exactly one of ``cancelled`` (no request) or sent (one request)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from functools import partial

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import API_KEY, LOGIN, Workers, wait_for
from worker.allmysms.client import AllMySmsClient
from worker.sandbox import SandboxProvider
from worker.send.retries import send_retrying
from worker.send.sender import Sender
from worker.settings import Secret, Settings
from worker.store.audit import AuditLog
from worker.store.cancel import Canceller
from worker.store.control import Switch
from worker.store.ledger import Ledger


TTL_S = 3600
SENDING_WHY = (
    "is sending: a worker claimed it and may be talking to AllMySMS; it cannot be cancelled any "
    "more"
)
SCHEDULED_WHY = (
    "is scheduled but AllMySMS gave no campaignId: cancel it in the AllMySMS customer area"
)


def request(key: str, **fields: object) -> dict[str, object]:
    return {"key": key, "text": f"msg {key}", "to": ["0612345678"], **fields}


def phones(count: int) -> list[str]:
    return [f"06123{n:05d}" for n in range(count)]


def metric(redis: Redis, name: str) -> int:
    return int(redis.hget(keys.METRICS, name) or 0)


def move(redis: Redis, key: str, state: State) -> None:
    """Move a queued message to ``state`` the way a worker does (claim, then settle)."""
    ledger = Ledger(redis, ttl_s=TTL_S, worker_name="w-test")
    assert ledger.claim(keys.message_id(key)).outcome == "claimed"
    if state is not State.SENDING:
        assert ledger.finish(
            keys.message_id(key),
            state,
            {"provider_status": 101 if state is State.SCHEDULED else 100},
            reason=str(state),
            record={"key": key, "lane": "default", "job_id": ""},
        )


def test_a_queued_message_ends_cancelled_and_a_worker_drops_its_job_silently(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    Producer(redis, ProducerSettings()).enqueue(request("c-1", campaign="spring"))

    done = workers.smsq("cancel", "c-1", "--by", "dora", "--why", "wrong text")
    run = workers.run_burst()

    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "c-1: cancelled - cancelled by dora: wrong text\n",
        "",
    )
    assert run.returncode == 0
    record = store.get("c-1")
    assert record is not None
    assert record.state is State.CANCELLED
    assert [(h["state"], h.get("by"), h.get("reason")) for h in record.history] == [
        ("queued", None, None),
        ("cancelled", "dora", "cancelled by dora: wrong text"),
    ]
    assert sandbox.requests() == []
    assert redis.zcard(keys.DEAD_LETTERS) == 0
    assert metric(redis, "state:cancelled") == 1
    assert metric(redis, "state:sending") == 0
    assert metric(redis, "dead_letters") == 0
    skipped = [e for e in run.events() if e.get("event") == "sms.send.skipped"]
    assert [(e["state"], e["level"]) for e in skipped] == [("cancelled", "info")]
    [entry] = AuditLog(redis, ttl_s=TTL_S).entries(action="cancel")
    assert (entry.actor, entry.why, entry.count, entry.targets) == (
        "dora",
        "wrong text",
        1,
        ("c-1",),
    )
    status = workers.smsq("status", "c-1", "--json")
    assert json.loads(status.stdout)["state"] == "cancelled"
    audit = workers.smsq("audit", "--action", "cancel", "--json")
    assert [json.loads(line)["targets"] for line in audit.stdout.splitlines()] == [["c-1"]]
    assert workers.smsq("dlq", "list", "--json").stdout == ""


def test_sending_sent_scheduled_and_cancelled_messages_are_refused_with_the_reason(
    redis: Redis, store: MessageStore, workers: Workers
) -> None:
    producer = Producer(redis, ProducerSettings())
    for key in ("r-sending", "r-sent", "r-scheduled", "r-twice"):
        producer.enqueue(request(key))
    move(redis, "r-sending", State.SENDING)
    move(redis, "r-sent", State.SENT)
    move(redis, "r-scheduled", State.SCHEDULED)
    assert workers.smsq("cancel", "r-twice", "--why", "first").returncode == 0

    done = workers.smsq(
        "cancel", "r-sending", "r-sent", "r-scheduled", "r-twice", "nope", "--why", "late"
    )

    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout.splitlines() == [
        f"r-sending: refused - {SENDING_WHY}",
        "r-sent: refused - is sent: AllMySMS accepted it; it cannot be cancelled",
        f"r-scheduled: refused - {SCHEDULED_WHY}",
        "r-twice: refused - is already cancelled",
        "nope: refused - no message with that key",
    ]
    states = [store.get(k).state for k in ("r-sending", "r-sent", "r-scheduled")]  # type: ignore[union-attr]
    assert states == [State.SENDING, State.SENT, State.SCHEDULED]
    assert [e.why for e in AuditLog(redis, ttl_s=TTL_S).entries(action="cancel")] == ["first"]


def test_dry_run_json_and_campaign_select_only_queued_messages(
    redis: Redis, store: MessageStore, workers: Workers
) -> None:
    producer = Producer(redis, ProducerSettings())
    for key in ("spring:1", "spring:2", "spring:3"):
        producer.enqueue(request(key, campaign="spring"))
    producer.enqueue(request("autumn:1", campaign="autumn"))
    move(redis, "spring:2", State.SENT)

    dry = workers.smsq("cancel", "--campaign", "spring", "--dry-run", "--why", "x", "--json")
    assert [store.get(k).state for k in ("spring:1", "spring:3")] == [  # type: ignore[union-attr]
        State.QUEUED,
        State.QUEUED,
    ]
    done = workers.smsq("cancel", "--campaign", "spring", "--why", "stop it", "--by", "ops")
    empty = workers.smsq("cancel", "--campaign", "spring", "--why", "again")

    assert dry.returncode == 0
    assert [json.loads(line) for line in dry.stdout.splitlines()] == [
        {
            "ref": key,
            "action": "cancelled",
            "detail": "would be cancelled (it is queued)",
            "dry_run": True,
        }
        for key in ("spring:1", "spring:3")
    ]
    assert done.stdout.splitlines() == [
        "spring:1: cancelled - cancelled by ops: stop it",
        "spring:3: cancelled - cancelled by ops: stop it",
    ]
    assert [store.get(k).state for k in ("spring:1", "spring:2", "spring:3", "autumn:1")] == [  # type: ignore[union-attr]
        State.CANCELLED,
        State.SENT,
        State.CANCELLED,
        State.QUEUED,
    ]
    assert (empty.returncode, empty.stdout, empty.stderr) == (
        0,
        "",
        "nothing matches: no queued or scheduled message in campaign 'spring'\n",
    )
    [entry] = AuditLog(redis, ttl_s=TTL_S).entries(action="cancel")
    assert (entry.count, entry.targets) == (2, ("spring:1", "spring:3"))


def test_mistakes_are_one_line_and_change_nothing(redis: Redis, workers: Workers) -> None:
    Producer(redis, ProducerSettings()).enqueue(request("m-1"))

    nothing = workers.smsq("cancel", "--why", "x")
    blank = workers.smsq("cancel", "m-1", "--why", "  ")
    no_why = workers.smsq("cancel", "m-1")

    assert (nothing.returncode, nothing.stdout, nothing.stderr) == (
        2,
        "",
        "smsq cancel: name message keys, or give --campaign NAME or --prefix KEYPREFIX\n",
    )
    assert (blank.returncode, blank.stderr) == (
        2,
        "smsq cancel: --why must say why (it is recorded)\n",
    )
    assert no_why.returncode == 2
    assert no_why.stderr.splitlines()[-1] == (
        "smsq cancel: error: the following arguments are required: --why"
    )
    assert MessageStore(redis).get("m-1").state is State.QUEUED  # type: ignore[union-attr]
    assert AuditLog(redis, ttl_s=TTL_S).entries() == []


def test_a_split_message_cancels_its_queued_parts_and_names_the_others(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    Producer(redis, ProducerSettings(chunk_recipients=4)).enqueue(
        {"key": "big", "text": "Hi", "to": phones(10)}
    )
    move(redis, "big#1/3", State.SENT)

    dry = workers.smsq("cancel", "big", "--dry-run", "--why", "x")
    done = workers.smsq("cancel", "big", "--by", "dora", "--why", "x")
    again = workers.smsq("cancel", "big", "--why", "x")
    assert workers.run_burst().returncode == 0

    sent = "big#1/3 (is sent: AllMySMS accepted it; it cannot be cancelled)"
    assert (dry.returncode, dry.stdout) == (
        0,
        f"big: cancelled (dry run) - would cancel 2 of 3 parts: big#2/3, big#3/3; "
        f"not cancelled: {sent}\n",
    )
    assert (done.returncode, done.stdout) == (
        0,
        f"big: cancelled - cancelled 2 of 3 parts: big#2/3, big#3/3; not cancelled: {sent}\n",
    )
    assert (again.returncode, again.stdout) == (
        1,
        "big: refused - none of its 3 parts is queued or scheduled: big#1/3 (sent), "
        "big#2/3 (cancelled), big#3/3 (cancelled)\n",
    )
    assert [store.get(f"big#{n}/3").state for n in (1, 2, 3)] == [  # type: ignore[union-attr]
        State.SENT,
        State.CANCELLED,
        State.CANCELLED,
    ]
    assert store.get("big").state is State.PARTIAL  # type: ignore[union-attr]
    assert sandbox.requests() == []
    [entry] = AuditLog(redis, ttl_s=TTL_S).entries(action="cancel")
    assert entry.targets == ("big#2/3", "big#3/3")


def test_a_fully_cancelled_split_message_is_cancelled(
    redis: Redis, store: MessageStore, workers: Workers
) -> None:
    Producer(redis, ProducerSettings(chunk_recipients=4)).enqueue(
        {"key": "all", "text": "Hi", "to": phones(6)}
    )

    done = workers.smsq("cancel", "all", "--why", "x", "--by", "b")

    assert done.stdout == "all: cancelled - cancelled 2 of 2 parts: all#1/2, all#2/2\n"
    assert store.get("all").state is State.CANCELLED  # type: ignore[union-attr]


def test_the_final_callback_event_and_the_tombstone_say_cancelled(
    redis: Redis, store: MessageStore
) -> None:
    producer = Producer(redis, ProducerSettings(key_memory_s=3600))
    producer.enqueue(request("t-1", callback_url="https://shop.example/cb"))
    canceller = Canceller(redis, Ledger(redis, ttl_s=TTL_S, worker_name="op"))

    decision = canceller.cancel("t-1", actor="dora", why="typo")
    [event] = [json.loads(raw) for raw in redis.hvals(keys.CALLBACK_EVENTS)]
    redis.delete(keys.message(keys.message_id("t-1")))  # the record expired
    replay = producer.enqueue(request("t-1"))

    assert (decision.action, decision.detail) == ("cancelled", "cancelled by dora: typo")
    assert (event["event"]["event"], event["event"]["state"], event["event"]["key"]) == (
        "message.final",
        "cancelled",
        "t-1",
    )
    assert (replay.state, replay.duplicate) == (State.CANCELLED, True)


@pytest.fixture
def client(sandbox: SandboxProvider) -> Iterator[AllMySmsClient]:
    """An AllMySMS client on the sandbox, closed at teardown."""
    allmysms = AllMySmsClient(
        base_url=sandbox.base_url, login=LOGIN, api_key=Secret(API_KEY), timeout=httpx.Timeout(5)
    )
    yield allmysms
    allmysms.close()


def _sender(redis: Redis, client: AllMySmsClient) -> Sender:
    settings = Settings.from_env({"ALLMYSMS_LOGIN": LOGIN, "ALLMYSMS_API_KEY": API_KEY})
    return Sender(
        ledger=Ledger(redis, ttl_s=TTL_S, worker_name="w-race"),
        client=client,
        retrying=partial(send_retrying, settings),
        switch=Switch(redis),
    )


RACE_TRIES = 300


def _send_after(sender: Sender, key: str, start: threading.Barrier, delay_s: float) -> None:
    """A worker's send of ``key``, once both sides are at the barrier (plus a jitter)."""
    start.wait()
    time.sleep(delay_s)
    sender.send(keys.message_id(key))


def test_a_cancel_racing_a_claim_ends_in_exactly_one_of_them(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    """The real claim and cancel scripts from two threads, a few hundred times: cancelled
    with no request, or sent with one request, never both."""
    producer = Producer(redis, ProducerSettings())
    sender = _sender(redis, client)
    canceller = Canceller(redis, Ledger(redis, ttl_s=TTL_S, worker_name="op"))
    outcomes = {State.CANCELLED: 0, State.SENT: 0}
    rng = random.Random(15)
    for n in range(RACE_TRIES):
        key = f"race-{n}"
        producer.enqueue(request(key))
        sandbox.clear_requests()
        start = threading.Barrier(2)
        jitter_s = [rng.uniform(0, 0.002), rng.uniform(0, 0.002)]

        thread = threading.Thread(target=_send_after, args=(sender, key, start, jitter_s[0]))
        thread.start()
        start.wait()
        time.sleep(jitter_s[1])
        decision = canceller.cancel(key, actor="racer", why="race")
        thread.join()

        record = store.get(key)
        assert record is not None
        requests = len(sandbox.requests())
        terminal = [h["state"] for h in record.history if h["state"] in ("sent", "cancelled")]
        if record.state is State.CANCELLED:
            assert (requests, decision.action, terminal) == (0, "cancelled", ["cancelled"])
        else:
            assert record.state is State.SENT
            assert (requests, decision.action, terminal) == (1, "refused", ["sent"])
        outcomes[record.state] += 1
    assert sum(outcomes.values()) == RACE_TRIES
    assert outcomes[State.CANCELLED] > 0
    assert outcomes[State.SENT] > 0
    assert redis.zcard(keys.DEAD_LETTERS) == 0


def test_cancelling_a_campaign_while_a_real_worker_sends_it_never_sends_a_cancelled_message(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    producer = Producer(redis, ProducerSettings())
    names = [f"live:{n}" for n in range(200)]
    producer.enqueue_many([request(key, campaign="live") for key in names])
    workers.start(
        SMSQ_IDLE_WAIT_S="0.1",
        SMSQ_RATE_LIMIT_SEGMENTS_PER_S="20",
        SMSQ_RATE_LIMIT_BURST_SEGMENTS="1",
    )
    wait_for(lambda: len(sandbox.requests()) >= 5, what="the worker to start sending")

    done = workers.smsq("cancel", "--campaign", "live", "--why", "stop", "--json")
    wait_for(
        lambda: all(
            r is not None and r.state in (State.SENT, State.CANCELLED)
            for r in store.get_many_by_id([keys.message_id(k) for k in names])
        ),
        what="every message to end",
    )

    records = [store.get(k) for k in names]
    cancelled = {r.key for r in records if r is not None and r.state is State.CANCELLED}
    sent = {r.key for r in records if r is not None and r.state is State.SENT}
    posted = [req["data"]["MESSAGE"].removeprefix("msg ") for req in sandbox.requests()]
    decisions = [json.loads(line) for line in done.stdout.splitlines()]
    refused = {d["ref"] for d in decisions if d["action"] == "refused"}
    assert cancelled == {d["ref"] for d in decisions if d["action"] == "cancelled"}
    assert refused <= sent  # claimed by the worker between the scan and the cancel
    assert done.returncode == (1 if refused else 0)
    assert cancelled
    assert sent
    assert cancelled | sent == set(names)
    assert sorted(posted) == sorted(sent)
    assert redis.zcard(keys.DEAD_LETTERS) == 0
