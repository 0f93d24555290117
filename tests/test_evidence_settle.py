"""Settling ``unknown`` from evidence: a real worker loses the sandbox's answer (the send
reached it), and the receipts the sandbox then pushes to the webhooks settle the message by
cliMsgId, or by recipient and send window when unambiguous."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from redis import Redis
from starlette.applications import Starlette
from structlog.testing import capture_logs

from producers import keys
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.callbacks import finish_sent, settings
from tests.helpers.processes import Workers, wait_for
from worker.admin.metrics import render
from worker.admin.server import running
from worker.gateway.webhooks import webhook_routes
from worker.sandbox import SandboxProvider
from worker.settings import Secret
from worker.store.evidence import Evidence, EvidenceBook
from worker.store.ledger import Ledger


WEBHOOK_SECRET = "wh-" + "8e2b4d6f" * 5
PHONE = "33612345678"


@pytest.fixture
def webhooks(redis: Redis) -> Iterator[str]:
    app = Starlette(routes=webhook_routes(settings(webhook_secret=Secret(WEBHOOK_SECRET)), redis))
    with running(app) as base:
        yield f"{base}/webhooks/allmysms/{WEBHOOK_SECRET}"


def metric(redis: Redis, name: str) -> int:
    return int(redis.hget(keys.METRICS, name) or 0)


def send_unknown(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers, *keys_: str
) -> None:
    """Each key is sent by a real worker; the sandbox sends it and cuts the answer."""
    for key in keys_:
        producer.enqueue({"key": key, "to": [PHONE], "text": "Votre code"})
    sandbox.add_fault({"action": "truncated", "times": len(keys_)})
    run = workers.run_burst()
    assert run.returncode == 0, run.log
    for key in keys_:
        record = store.get(key)
        assert record is not None
        assert record.state is State.UNKNOWN


def test_a_receipt_naming_the_message_by_climsgid_settles_it(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    webhooks: str,
) -> None:
    """unknown → sent once its receipt (with cliMsgId) arrives; the receipt is then applied,
    the dead letter is gone and the history says what proved it."""
    sandbox.set_receipts_url(f"{webhooks}/receipts", delay_ms=1500)
    send_unknown(producer, store, sandbox, workers, "otp-1")
    [request] = sandbox.requests()
    [sms_id] = request["sms_ids"]
    mid = keys.message_id("otp-1")
    wait_for(lambda: len(sandbox.receipts.log()) == 2, what="2 receipts")
    assert [c["http_status"] for c in sandbox.receipts.log()] == [200, 200]
    record = store.get("otp-1")
    assert record is not None
    assert record.state is State.SENT
    assert record.sms_ids == {PHONE: sms_id}
    assert record.receipts[PHONE]["status"] == 1
    settled = [h for h in record.history if h["state"] == "sent"]
    assert [(h["reason"], h["by"]) for h in settled] == [
        (
            f"settled by receipt smsId={sms_id}, cliMsgId={mid}, "
            f"campaignId={sandbox.receipts.log()[0]['campaignId']}: AllMySMS got it",
            "webhooks (evidence)",
        )
    ]
    assert redis.hget(keys.message(mid), "settled_by") == b"receipt"
    assert not redis.exists(keys.dead_letter(mid))
    assert redis.zscore(keys.DEAD_LETTERS, mid) is None
    assert metric(redis, "unknown_settled:receipt") == 1
    assert len(sandbox.requests()) == 1  # nothing was sent again
    # Operators see it in smsq stats (text and JSON) and /metrics.
    text = workers.smsq("stats")
    assert text.returncode == 0, text.stderr
    assert (
        "unknown settled from evidence: 1 (receipt=1, reply=0, lookup=0), "
        "0 ambiguous matches left for a person"
    ) in text.stdout.splitlines()
    as_json = json.loads(workers.smsq("stats", "--json").stdout)
    assert as_json["unknown_settled"] == {"receipt": 1, "reply": 0, "lookup": 0}
    assert as_json["unknown_ambiguous"] == 0
    assert 'smsq_unknown_settled_total{how="receipt"} 1.0' in render(redis).decode()


def test_without_climsgid_one_unknown_to_the_number_is_settled(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    webhooks: str,
) -> None:
    """A webhook without cliMsgId settles by recipient and send window when exactly one
    unknown message went to that number."""
    sandbox.set_receipts_url(f"{webhooks}/receipts", delay_ms=1500, echo_cli_msg_id=False)
    send_unknown(producer, store, sandbox, workers, "otp-2")
    wait_for(lambda: len(sandbox.receipts.log()) == 2, what="2 receipts")
    assert "cliMsgId" not in sandbox.receipts.log()[0]
    record = store.get("otp-2")
    assert record is not None
    assert record.state is State.SENT
    assert record.receipts[PHONE]["status"] == 1
    assert [h["reason"].split(":")[0] for h in record.history if h["state"] == "sent"] == [
        f"settled by receipt smsId={record.sms_ids[PHONE]}, campaignId="
        f"{sandbox.receipts.log()[0]['campaignId']}"
    ]


def test_two_unknowns_to_the_same_number_stay_unknown(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    webhooks: str,
) -> None:
    """Ambiguous: two unknown messages to the number in the window, no cliMsgId → both stay
    unknown (counted), and each receipt's campaign is kept as a lead for a getAcks lookup."""
    sandbox.set_receipts_url(f"{webhooks}/receipts", delay_ms=1500, echo_cli_msg_id=False)
    send_unknown(producer, store, sandbox, workers, "otp-3", "otp-4")
    with capture_logs() as logs:
        wait_for(lambda: len(sandbox.receipts.log()) == 4, what="4 receipts")
    ambiguous = [e for e in logs if e["event"] == "sms.unknown.ambiguous"]
    assert len(ambiguous) == 4
    assert {k: ambiguous[0][k] for k in ("phone", "candidates", "how", "reason")} == {
        "phone": "3361*****78",
        "candidates": 2,
        "how": "receipt",
        "reason": "several unknown messages to this number in the send window; left for a person",
    }
    for key in ("otp-3", "otp-4"):
        record = store.get(key)
        assert record is not None
        assert record.state is State.UNKNOWN
    assert metric(redis, "unknown_ambiguous") == 4
    assert metric(redis, "receipts_unknown") == 4
    campaigns = {c["campaignId"] for c in sandbox.receipts.log()}
    assert {k.decode() for k in redis.hkeys(keys.EVIDENCE_CAMPAIGNS)} == campaigns  # type: ignore[union-attr]


def test_evidence_for_a_message_that_is_not_unknown_changes_nothing(
    redis: Redis, producer: Producer, store: MessageStore
) -> None:
    """A cliMsgId naming a sent message, or a recipient it was not sent to, settles nothing."""
    mid = finish_sent(redis, producer, "done", callback_url=None)
    ledger = Ledger(redis, ttl_s=3600, worker_name="t")
    book = EvidenceBook(redis, ledger, actor="t")
    assert book.settle(Evidence("receipt", phone=PHONE, cli_msg_id=mid)).outcome == "not_unknown"
    producer.enqueue({"key": "lost", "to": [PHONE], "text": "x"})
    lost = keys.message_id("lost")
    assert ledger.claim(lost).outcome == "claimed"
    assert ledger.finish(lost, State.UNKNOWN, {}, reason="lost", record={})
    other = Evidence("receipt", phone="33698765432", cli_msg_id=lost)
    assert book.settle(other).outcome == "not_unknown"
    assert book.settle(Evidence("receipt", phone="33698765432")).outcome == "no_match"
    record = store.get("lost")
    assert record is not None
    assert record.state is State.UNKNOWN
    settled = book.settle(Evidence("receipt", phone=PHONE, sms_id="sms-9", cli_msg_id=lost))
    assert (settled.outcome, settled.message_id) == ("settled", lost)
    assert book.settle(Evidence("receipt", phone=PHONE, cli_msg_id=lost)).outcome == "not_unknown"


def test_a_receipt_older_than_the_send_does_not_match(redis: Redis, producer: Producer) -> None:
    """The send window: a receipt dated well before the send started is no evidence of it."""
    producer.enqueue({"key": "late", "to": [PHONE], "text": "x"})
    mid = keys.message_id("late")
    ledger = Ledger(redis, ttl_s=3600, worker_name="t")
    assert ledger.claim(mid).outcome == "claimed"
    assert ledger.finish(mid, State.UNKNOWN, {}, reason="lost", record={})
    book = EvidenceBook(redis, ledger, actor="t")
    old = Evidence("receipt", phone=PHONE, reception_date="2020-01-01 10:00:00")
    assert book.settle(old).outcome == "no_match"
    assert book.candidates(PHONE, time.time()) == [mid]


def test_every_recipient_of_a_settled_message_gets_its_receipts_and_the_producer_a_final_sent(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    webhooks: str,
) -> None:
    """Two recipients: the first receipt settles the message, the other recipient's smsId is
    linked by cliMsgId, so both end delivered; the callback outbox gets unknown's final event
    and then sent's."""
    other = "33698765432"
    sandbox.set_receipts_url(f"{webhooks}/receipts", delay_ms=1500)
    producer.enqueue(
        {
            "key": "two",
            "to": [PHONE, other],
            "text": "x",
            "callback_url": "https://shop.example/sms-events",
        }
    )
    sandbox.add_fault({"action": "truncated"})
    assert workers.run_burst().returncode == 0
    wait_for(lambda: len(sandbox.receipts.log()) == 4, what="4 receipts")
    [request] = sandbox.requests()
    record = store.get("two")
    assert record is not None
    assert record.state is State.SENT
    assert sorted(record.sms_ids.values()) == sorted(request["sms_ids"])
    assert record.delivery == {"delivered": 2, "failed": 0, "pending": 0}
    assert [h["state"] for h in record.history if h["state"] in ("unknown", "sent")] == [
        "unknown",
        "sent",
    ]
    finals = [
        json.loads(v)["event"]
        for v in redis.hvals(keys.CALLBACK_EVENTS)
        if json.loads(v)["event"]["event"] == "message.final"
    ]
    assert sorted(e["state"] for e in finals) == ["sent", "unknown"]
    assert metric(redis, "unknown_settled:receipt") == 1


def test_a_receipt_of_a_campaign_smsq_knows_settles_no_other_message(
    redis: Redis, producer: Producer, store: MessageStore
) -> None:
    """A receipt whose campaignId belongs to a sent message is about that message: it does not
    settle another unknown message to the same number by recipient and window."""
    ledger = Ledger(redis, ttl_s=3600, worker_name="t")
    for key, state, fields in (
        ("known-campaign", State.SENT, {"campaign_id": "sbx_known", "sms_ids": {PHONE: "s-1"}}),
        ("lonely-unknown", State.UNKNOWN, {}),
    ):
        producer.enqueue({"key": key, "to": [PHONE], "text": "x"})
        mid = keys.message_id(key)
        assert ledger.claim(mid).outcome == "claimed"
        assert ledger.finish(mid, state, fields, reason="r", record={})
    book = EvidenceBook(redis, ledger, actor="t")
    evidence = Evidence("receipt", phone=PHONE, sms_id="s-2", campaign_id="sbx_known")
    assert book.settle(evidence).outcome == "not_unknown"
    assert store.get("lonely-unknown").state is State.UNKNOWN  # type: ignore[union-attr]
    other = Evidence("receipt", phone=PHONE, sms_id="s-3", campaign_id="sbx_foreign")
    assert book.settle(other).outcome == "settled"
