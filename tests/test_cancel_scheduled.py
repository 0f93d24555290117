"""Cancel of ``scheduled`` messages (AllMySMS status 101) through deleteCampaign, against the
sandbox over real sockets: only the provider's OK makes them ``cancelled``; any failure leaves
them ``scheduled`` and says why."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import API_KEY, LOGIN, Workers
from worker.allmysms.client import AllMySmsClient
from worker.cli.operator import default_operator
from worker.sandbox import SandboxProvider
from worker.send.retries import send_retrying
from worker.send.sender import Sender
from worker.settings import Secret, Settings
from worker.store.audit import AuditLog
from worker.store.cancel import Canceller
from worker.store.control import Switch
from worker.store.ledger import Ledger
from worker.store.receipts import ReceiptBook, parse_receipt


TTL_S = 3600


def later(seconds: float = 3600) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def request(key: str, **fields: object) -> dict[str, object]:
    return {"key": key, "text": f"msg {key}", "to": ["0612345678"], **fields}


def phones(count: int) -> list[str]:
    return [f"06123{n:05d}" for n in range(count)]


@pytest.fixture
def client(sandbox: SandboxProvider) -> Iterator[AllMySmsClient]:
    allmysms = AllMySmsClient(
        base_url=sandbox.base_url, login=LOGIN, api_key=Secret(API_KEY), timeout=httpx.Timeout(2)
    )
    yield allmysms
    allmysms.close()


def send(redis: Redis, client: AllMySmsClient, *refs: str) -> None:
    """Send each message as a worker does (claim, sendSms, record the answer)."""
    settings = Settings.from_env({"ALLMYSMS_LOGIN": LOGIN, "ALLMYSMS_API_KEY": API_KEY})
    sender = Sender(
        ledger=Ledger(redis, ttl_s=TTL_S, worker_name="w-test"),
        client=client,
        retrying=partial(send_retrying, settings),
        switch=Switch(redis),
    )
    for ref in refs:
        sender.send(keys.message_id(ref))


def scheduled(redis: Redis, client: AllMySmsClient, key: str, seconds: float = 3600) -> str:
    """Enqueue ``key`` for later and send it: it is ``scheduled``; its campaignId."""
    Producer(redis, ProducerSettings()).enqueue(request(key, send_at=later(seconds)))
    send(redis, client, key)
    record = MessageStore(redis).get(key)
    assert record is not None
    assert record.state is State.SCHEDULED
    assert record.campaign_id
    return record.campaign_id


def canceller(redis: Redis, client: AllMySmsClient | None) -> Canceller:
    return Canceller(
        redis,
        Ledger(redis, ttl_s=TTL_S, worker_name="op"),
        deleter=None if client is None else (lambda: client),
    )


def deletes(sandbox: SandboxProvider) -> list[tuple[str, object]]:
    return [
        (r["campId"], r["status"])
        for r in sandbox.requests()
        if r.get("endpoint") == "deleteCampaign"
    ]


def test_smsq_cancel_deletes_the_campaign_and_the_message_ends_cancelled_without_receipts(
    redis: Redis,
    store: MessageStore,
    sandbox: SandboxProvider,
    client: AllMySmsClient,
    workers: Workers,
) -> None:
    sandbox.set_receipts_url(f"http://127.0.0.1:{sandbox.port}/webhook", delay_ms=0)
    campaign = scheduled(redis, client, "s-1", seconds=3)

    dry = workers.smsq("cancel", "s-1", "--dry-run", "--why", "typo")
    assert deletes(sandbox) == []
    done = workers.smsq("cancel", "s-1", "--by", "dora", "--why", "typo")
    time.sleep(3.5)  # past the DATE: a campaign still there would have pushed its receipts

    assert (dry.returncode, dry.stdout) == (
        0,
        f"s-1: cancelled (dry run) - would delete AllMySMS campaign {campaign} (it is "
        "scheduled), then cancel it\n",
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "s-1: cancelled - cancelled by dora: typo (deleteCampaign OK)\n",
        "",
    )
    record = store.get("s-1")
    assert record is not None
    assert record.state is State.CANCELLED
    assert [(h["state"], h.get("by"), h.get("reason")) for h in record.history][-2:] == [
        ("scheduled", None, "101 messages scheduled for DATE"),
        ("cancelled", "dora", f"cancelled by dora: typo (deleteCampaign OK, campaign {campaign})"),
    ]
    assert deletes(sandbox) == [(campaign, "OK")]
    assert sandbox.receipts.log() == []
    assert sandbox.receipts.pending() == 0
    [entry] = AuditLog(redis, ttl_s=TTL_S).entries(action="cancel")
    assert (entry.actor, entry.targets) == ("dora", ("s-1",))
    final = [json.loads(raw)["event"] for raw in redis.hvals(keys.CALLBACK_EVENTS)]
    assert final == []  # no callback_url: no event either way


@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        (
            {"action": "status", "status": 102},
            "AllMySMS refused to delete campaign {c}: Problème de connexion – Aucun compte ne "  # noqa: RUF001
            "correspond aux clientcode et passcode spécifiés; it stays scheduled",
        ),
        (
            {"action": "html502"},
            "AllMySMS may have deleted campaign {c}, its answer is missing (AllMySMS "
            "deleteCampaign answered HTTP 502); it stays scheduled: try again (a 'Campaign not "
            "found' then means it was deleted or sent)",
        ),
        (
            {"action": "drop"},
            "AllMySMS may have deleted campaign {c}, its answer is missing (RemoteProtocolError "
            "during deleteCampaign); it stays scheduled: try again (a 'Campaign not found' then "
            "means it was deleted or sent)",
        ),
    ],
)
def test_a_failed_delete_leaves_it_scheduled_and_says_why(
    redis: Redis,
    store: MessageStore,
    sandbox: SandboxProvider,
    client: AllMySmsClient,
    fault: dict[str, object],
    detail: str,
) -> None:
    campaign = scheduled(redis, client, "f-1")
    sandbox.add_fault({"endpoint": "deleteCampaign", **fault})

    decision = canceller(redis, client).cancel("f-1", actor="dora", why="typo")
    retry = canceller(redis, client).cancel("f-1", actor="dora", why="typo")

    assert (decision.action, decision.detail) == ("refused", detail.format(c=campaign))
    assert (retry.action, retry.detail) == (
        "cancelled",
        "cancelled by dora: typo (deleteCampaign OK)",
    )
    assert [e.targets for e in AuditLog(redis, ttl_s=TTL_S).entries(action="cancel")] == [("f-1",)]
    assert len(deletes(sandbox)) == 2


def test_unreachable_due_and_unconfigured_deletes_leave_it_scheduled(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    far = scheduled(redis, client, "u-far")
    soon = scheduled(redis, client, "u-soon", seconds=1)
    time.sleep(2.1)  # u-soon's DATE has passed: AllMySMS sent it
    nowhere = AllMySmsClient(
        base_url="http://127.0.0.1:9/http/9.0",
        login=LOGIN,
        api_key=Secret(API_KEY),
        timeout=httpx.Timeout(2),
    )

    unreachable = canceller(redis, nowhere).cancel("u-far", actor="a", why="b")
    due = canceller(redis, client).cancel("u-soon", actor="a", why="b")
    unconfigured = canceller(redis, None).cancel("u-far", actor="a", why="b")
    nowhere.close()

    assert (unreachable.action, unreachable.detail) == (
        "refused",
        "AllMySMS was not reached (ConnectError: AllMySMS deleteCampaign was not reached); it "
        "stays scheduled: try again",
    )
    assert (due.action, due.detail) == (
        "refused",
        f"AllMySMS refused to delete campaign {soon}: Campaign already sent: it can no longer be "
        "deleted; it stays scheduled",
    )
    assert (unconfigured.action, unconfigured.detail) == (
        "refused",
        "is scheduled: cancelling it needs AllMySMS (deleteCampaign), not configured here",
    )
    assert [store.get(k).state for k in ("u-far", "u-soon")] == [State.SCHEDULED] * 2  # type: ignore[union-attr]
    assert deletes(sandbox) == [(soon, 0)]
    assert far not in {c for c, _ in deletes(sandbox)}


def test_a_stored_receipt_refuses_without_asking_and_one_arriving_meanwhile_is_kept(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    scheduled(redis, client, "r-old")
    scheduled(redis, client, "r-new")
    book = ReceiptBook(redis)

    def receipt(key: str) -> None:
        record = store.get(key)
        assert record is not None
        [sms_id] = record.sms_ids.values()
        book.apply_receipt(
            parse_receipt({"smsId": sms_id, "status": "3", "statusText": "Transmitted"}),
            event_id=f"ev-{key}",
        )

    class ReceiptMeanwhile:
        """The real client, with a receipt landing while deleteCampaign is on its way."""

        def delete_campaign(self, campaign_id: str) -> None:
            receipt("r-new")
            client.delete_campaign(campaign_id)

    receipt("r-old")
    old = canceller(redis, client).cancel("r-old", actor="a", why="b")
    new = Canceller(
        redis, Ledger(redis, ttl_s=TTL_S, worker_name="op"), deleter=ReceiptMeanwhile
    ).cancel("r-new", actor="a", why="b")

    assert (old.action, old.detail) == (
        "refused",
        "is scheduled, but a delivery receipt shows AllMySMS sent it already; it cannot be "
        "cancelled",
    )
    assert new.action == "cancelled"
    record = store.get("r-new")
    assert record is not None
    assert record.state is State.CANCELLED
    assert [h["state"] for h in record.history] == [
        "queued",
        "sending",
        "scheduled",
        "receipt",
        "cancelled",
    ]
    assert redis.hlen(keys.receipts(record.message_id)) == 1
    assert len(deletes(sandbox)) == 1


def test_a_split_message_deletes_each_scheduled_parts_campaign(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    """Each part has its own campaign; a refused delete leaves that part scheduled, named."""
    Producer(redis, ProducerSettings(chunk_recipients=4)).enqueue(
        {"key": "big", "text": "Hi", "to": phones(10), "send_at": later()}
    )
    send(redis, client, "big#1/3", "big#2/3")  # big#3/3 stays queued
    campaigns = [store.get(f"big#{n}/3").campaign_id for n in (1, 2)]  # type: ignore[union-attr]
    assert len(set(campaigns)) == 2
    sandbox.add_fault({"endpoint": "deleteCampaign", "action": "status", "status": 105})

    dry = canceller(redis, client).cancel("big", actor="a", why="b", dry_run=True)
    done = canceller(redis, client).cancel("big", actor="a", why="b")

    assert dry.detail == (
        "would cancel 3 of 3 parts: big#1/3, big#2/3, big#3/3 (through deleteCampaign: big#1/3, "
        "big#2/3)"
    )
    assert (done.action, done.detail) == (
        "cancelled",
        f"cancelled 2 of 3 parts: big#2/3, big#3/3; not cancelled: big#1/3 (AllMySMS refused to "
        f"delete campaign {campaigns[0]}: Flux XML Vide; it stays scheduled)",
    )
    assert [store.get(f"big#{n}/3").state for n in (1, 2, 3)] == [  # type: ignore[union-attr]
        State.SCHEDULED,
        State.CANCELLED,
        State.CANCELLED,
    ]
    assert deletes(sandbox) == [(campaigns[0], 105), (campaigns[1], "OK")]
    [entry] = AuditLog(redis, ttl_s=TTL_S).entries(action="cancel")
    assert entry.targets == ("big#2/3", "big#3/3")


def test_two_cancels_at_once_delete_the_campaign_once(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    campaign = scheduled(redis, client, "twice")
    start = threading.Barrier(2)
    decisions = []

    def cancel() -> None:
        http = AllMySmsClient(
            base_url=sandbox.base_url,
            login=LOGIN,
            api_key=Secret(API_KEY),
            timeout=httpx.Timeout(2),
        )
        start.wait()
        decisions.append(canceller(redis, http).cancel("twice", actor="a", why="b"))
        http.close()

    threads = [threading.Thread(target=cancel) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    [first, second] = sorted((d.action, d.detail) for d in decisions)
    assert first == ("cancelled", "cancelled by a: b (deleteCampaign OK)")
    # The other one lost: it saw the state cancelled already, or asked AllMySMS too late.
    assert second in (
        ("refused", "is already cancelled"),
        (
            "refused",
            f"AllMySMS refused to delete campaign {campaign}: Campaign not found; it stays "
            "scheduled",
        ),
    )
    assert [s for _, s in deletes(sandbox)].count("OK") == 1
    record = store.get("twice")
    assert record is not None
    assert [h["state"] for h in record.history].count("cancelled") == 1


def test_prefix_and_campaign_select_queued_and_scheduled_messages(
    redis: Redis,
    store: MessageStore,
    sandbox: SandboxProvider,
    client: AllMySmsClient,
    workers: Workers,
) -> None:
    producer = Producer(redis, ProducerSettings())
    for key in ("spring:1", "spring:2", "spring:3"):
        producer.enqueue(request(key, campaign="spring", send_at=later()))
    producer.enqueue(request("springtime", campaign="other"))
    send(redis, client, "spring:2")

    dry = workers.smsq("cancel", "--prefix", "spring:", "--dry-run", "--why", "x", "--json")
    done = workers.smsq("cancel", "--campaign", "spring", "--why", "x")
    empty = workers.smsq("cancel", "--prefix", "spring:", "--why", "x")
    blank = workers.smsq("cancel", "--prefix", " ", "--why", "x")

    assert [(d["ref"], d["detail"][:20]) for d in map(json.loads, dry.stdout.splitlines())] == [
        ("spring:1", "would be cancelled ("),
        ("spring:2", "would delete AllMySM"),
        ("spring:3", "would be cancelled ("),
    ]
    by = default_operator()
    assert (done.returncode, done.stdout.splitlines()) == (
        0,
        [
            f"spring:1: cancelled - cancelled by {by}: x",
            f"spring:2: cancelled - cancelled by {by}: x (deleteCampaign OK)",
            f"spring:3: cancelled - cancelled by {by}: x",
        ],
    )
    assert [store.get(k).state for k in ("spring:1", "spring:2", "spring:3", "springtime")] == [  # type: ignore[union-attr]
        State.CANCELLED,
        State.CANCELLED,
        State.CANCELLED,
        State.QUEUED,
    ]
    assert (empty.returncode, empty.stdout, empty.stderr) == (
        0,
        "",
        "nothing matches: no queued or scheduled message with a key starting 'spring:'\n",
    )
    assert (blank.returncode, blank.stderr) == (
        2,
        "smsq cancel: --prefix must not be empty (it would match every key)\n",
    )


def test_the_callback_says_scheduled_then_cancelled(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    Producer(redis, ProducerSettings()).enqueue(
        request("cb-1", send_at=later(), callback_url="https://shop.example/cb")
    )
    send(redis, client, "cb-1")

    decision = canceller(redis, client).cancel("cb-1", actor="dora", why="typo")

    assert decision.action == "cancelled"
    events = [json.loads(raw)["event"] for raw in redis.hvals(keys.CALLBACK_EVENTS)]
    finals = sorted((e["event"], e["state"]) for e in events if e["event"] == "message.final")
    assert finals == [("message.final", "cancelled"), ("message.final", "scheduled")]


def test_smsq_cancel_needs_allmysms_settings_only_for_a_scheduled_message(
    redis: Redis, store: MessageStore, client: AllMySmsClient, workers: Workers
) -> None:
    scheduled(redis, client, "n-scheduled")
    Producer(redis, ProducerSettings()).enqueue(request("n-queued"))

    done = workers.smsq(
        "cancel", "n-queued", "n-scheduled", "--by", "b", "--why", "x", ALLMYSMS_API_KEY=""
    )

    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout.splitlines() == [
        "n-queued: cancelled - cancelled by b: x",
        "n-scheduled: refused - is scheduled: cancelling it needs AllMySMS (deleteCampaign), not "
        "configured here (ALLMYSMS_API_KEY: is required to send (the API key from your AllMySMS "
        "account))",
    ]
    assert store.get("n-scheduled").state is State.SCHEDULED  # type: ignore[union-attr]


RACE_TRIES = 100


def test_a_receipt_racing_a_scheduled_cancel_is_never_lost(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    """A receipt applied from another thread while the cancel runs, a hundred times: it is
    always kept; the message ends cancelled (deleteCampaign OK) or, when the receipt came
    first, stays scheduled with the reason; never anything else."""
    book = ReceiptBook(redis)
    rng = random.Random(15)
    seen = {State.CANCELLED: 0, State.SCHEDULED: 0}
    for n in range(RACE_TRIES):
        key = f"race-{n}"
        scheduled(redis, client, key)
        record = store.get(key)
        assert record is not None
        [sms_id] = record.sms_ids.values()
        receipt = parse_receipt({"smsId": sms_id, "status": "3", "statusText": "Transmitted"})
        start = threading.Barrier(2)
        delay_s = rng.uniform(0, 0.003)

        def land(
            start: threading.Barrier = start, receipt: Any = receipt, wait: float = delay_s
        ) -> None:
            start.wait()
            time.sleep(wait)
            book.apply_receipt(receipt, event_id=f"ev-{receipt.sms_id}")

        thread = threading.Thread(target=land)
        thread.start()
        start.wait()
        decision = canceller(redis, client).cancel(key, actor="racer", why="race")
        thread.join()

        after = store.get(key)
        assert after is not None
        assert redis.hlen(keys.receipts(after.message_id)) == 1
        assert [h["state"] for h in after.history].count("receipt") == 1
        if decision.action == "cancelled":
            assert after.state is State.CANCELLED
        else:
            assert after.state is State.SCHEDULED
            assert decision.detail.startswith("is scheduled, but a delivery receipt shows")
        seen[after.state] += 1
    assert sum(seen.values()) == RACE_TRIES


def _land(book: ReceiptBook, receipt: Any, start: threading.Barrier, delay_s: float) -> None:
    """Apply ``receipt`` once both sides are at the barrier (plus a jitter)."""
    start.wait()
    time.sleep(delay_s)
    book.apply_receipt(receipt, event_id=f"ev-{receipt.sms_id}")
