"""``smsq purge --phone`` reaches the callback outbox (waiting and dead callbacks), dead
callbacks expire by themselves, and each purge leaves an erasure record without the number."""

from __future__ import annotations

import json
import time
from typing import Any

from redis import Redis

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.states import State
from tests.helpers.callbacks import TTL_S, Receiver, deliver_all, metric, settings
from tests.helpers.processes import Workers
from tests.helpers.redis_dump import redis_dump
from worker.callbacks.dispatcher import Dispatcher
from worker.callbacks.outbox import dead_callbacks
from worker.store.ledger import Ledger
from worker.store.purge import Purger
from worker.store.receipts import ReceiptBook, parse_receipt, parse_reply


HER, BOB = "33612345678", "33698765432"
HER_WORDS = "Oui, c'est Zoé, merci"


def finish(redis: Redis, producer: Producer, key: str, sms_ids: dict[str, str], url: str) -> str:
    """Enqueue a message to the numbers of ``sms_ids`` with a callback_url and move it to
    ``sent`` the way a worker does (its final event goes to the outbox)."""
    producer.enqueue(
        {"key": key, "to": [f"+{p}" for p in sms_ids], "text": "hello", "callback_url": url}
    )
    mid = keys.message_id(key)
    ledger = Ledger(redis, ttl_s=TTL_S, worker_name="test")
    assert ledger.claim(mid).outcome == "claimed"
    assert ledger.finish(
        mid,
        State.SENT,
        {"provider_status": 100, "sms_ids": sms_ids, "invalid_numbers": []},
        reason="100 ok",
        record={"key": key, "lane": "default", "job_id": keys.job_id(mid)},
    )
    return mid


def summary(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event["event"], event["key"], event.get("phone"), event.get("sms_ids"))


def test_purge_erases_her_callbacks_waiting_and_dead_and_keeps_bobs(
    redis: Redis, producer: Producer, receiver: Receiver, workers: Workers
) -> None:
    """Her receipt and reply events and the final events of messages sent only to her go;
    final events of shared messages lose her entry and still reach the producer for Bob."""
    receiver.statuses = [410, 410]
    url = receiver.start()
    finish(redis, producer, "dead-shared", {HER: "ds-a", BOB: "ds-b"}, url)
    finish(redis, producer, "dead-solo", {HER: "do-a"}, url)
    dispatcher = Dispatcher(settings(), redis)
    assert deliver_all(dispatcher) == ["dead", "dead"]
    finish(redis, producer, "shared", {HER: "sh-a", BOB: "sh-b"}, url)
    finish(redis, producer, "solo", {HER: "so-a"}, url)
    book = ReceiptBook(redis)
    for sms_id, phone, words in (("sh-a", HER, HER_WORDS), ("sh-b", BOB, "ok for Bob")):
        receipt = parse_receipt({"smsId": sms_id, "status": "1", "phoneNumber": phone})
        assert book.apply_receipt(receipt, event_id=f"receipt-{sms_id}").outcome == "applied"
        reply = parse_reply(
            {"smsMoId": f"mo-{sms_id}", "message": words, "smsId": sms_id, "phoneNumber": phone}
        )
        assert book.store_reply(reply, event_id=f"reply-{sms_id}").outcome == "stored"
    assert redis.hlen(keys.CALLBACK_EVENTS) == 6
    assert HER.encode() in redis_dump(redis)

    purge = workers.smsq(
        "purge", "--phone", "06 12 34 56 78", "--by", "dpo@example", "--why", "ticket G-7", "--json"
    )

    assert purge.returncode == 0, purge.stderr
    report = json.loads(purge.stdout)
    for listed in ("deleted_messages", "redacted_messages"):
        report[listed].sort()  # in Redis's scan order
    assert {k: v for k, v in report.items() if k != "erasure_id"} == {
        "dry_run": False,
        "deleted_messages": ["dead-solo", "solo"],
        "redacted_messages": ["dead-shared", "shared"],
        "deleted_dead_letters": [],
        "deleted_intake_entries": 0,
        "deleted_callback_events": 3,
        "redacted_callback_events": 1,
        "deleted_dead_callbacks": 1,
        "redacted_dead_callbacks": 1,
    }
    dump = redis_dump(redis)
    assert b"612345678" not in dump
    assert "Zoé".encode() not in dump
    [dead] = dead_callbacks(redis)
    assert summary(dead.event) == ("message.final", "dead-shared", None, {BOB: "ds-b"})
    assert deliver_all(dispatcher) == ["delivered"] * 3
    assert sorted(summary(e) for e in receiver.events()[2:]) == [
        ("message.final", "shared", None, {BOB: "sh-b"}),
        ("message.receipt", "shared", BOB, None),
        ("message.reply", "shared", BOB, None),
    ]
    audit = workers.smsq("audit", "--json")
    [entry] = [json.loads(line) for line in audit.stdout.splitlines()]
    assert {k: v for k, v in entry.items() if k not in ("id", "at")} == {
        "action": "erasure",
        "actor": "dpo@example",
        "why": "ticket G-7",
        "count": 10,
        "targets": [],
        "counts": {
            "messages_deleted": 2,
            "messages_redacted": 2,
            "dead_letters_deleted": 0,
            "intake_entries_deleted": 0,
            "callback_events_deleted": 3,
            "callback_events_redacted": 1,
            "dead_callbacks_deleted": 1,
            "dead_callbacks_redacted": 1,
        },
        "erasure_id": report["erasure_id"],
    }


def test_a_dry_run_changes_nothing_and_records_nothing(
    redis: Redis, producer: Producer, receiver: Receiver, workers: Workers
) -> None:
    finish(redis, producer, "solo", {HER: "so-a"}, receiver.start())
    before = redis_dump(redis)
    dry = workers.smsq("purge", "--phone", "0612345678", "--dry-run", "--json")
    assert dry.returncode == 0
    assert json.loads(dry.stdout)["deleted_callback_events"] == 1
    assert redis_dump(redis) == before
    assert redis.exists(keys.AUDIT) == 0


def test_a_why_holding_the_number_is_refused_and_nothing_is_erased(
    redis: Redis, producer: Producer, receiver: Receiver, workers: Workers
) -> None:
    """The erasure record must not hold the number: an explanation naming it is refused."""
    finish(redis, producer, "solo", {HER: "so-a"}, receiver.start())
    result = workers.smsq("purge", "--phone", "0612345678", "--why", "asked by +33 6 12 34 56 78")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "smsq: --why: must not hold the phone number: the audit stream keeps none\n",
    )
    by = workers.smsq("purge", "--phone", "0612345678", "--by", "0612345678@host")
    assert (by.returncode, by.stderr) == (
        1,
        "smsq: --by: must not hold the phone number: the audit stream keeps none\n",
    )
    assert redis.hlen(keys.CALLBACK_EVENTS) == 1
    assert redis.exists(keys.message(keys.message_id("solo")), keys.AUDIT) == 1


def test_a_dead_callback_expires_by_itself(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """Kept for the outcome TTL, then gone without any other write: no envelope, no index."""
    receiver.statuses = [410]
    finish(redis, producer, "dead-solo", {HER: "do-a"}, receiver.start())
    short = settings(producer=ProducerSettings(outcome_ttl_s=1))
    assert deliver_all(Dispatcher(short, redis)) == ["dead"]
    [dead] = dead_callbacks(redis)
    assert dead.event["sms_ids"] == {HER: "do-a"}
    assert redis.hlen(keys.CALLBACK_EVENTS) == 0
    assert redis.ttl(keys.dead_callback(dead.event_id)) == 1
    assert redis.ttl(keys.CALLBACK_DEAD) == 1
    time.sleep(1.1)
    assert dead_callbacks(redis) == []
    assert sorted(redis.scan_iter(match="smsq:callbacks:*")) == [keys.CALLBACK_WAKE.encode()]
    assert metric(redis, "callbacks_dead") == 1


def test_an_event_erased_during_its_delivery_leaves_no_dead_callback(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """A dispatcher giving up on an event a purge erased meanwhile keeps nothing."""
    finish(redis, producer, "solo", {HER: "so-a"}, receiver.start())
    dispatcher = Dispatcher(settings(), redis)
    pending = dispatcher.outbox.take()
    assert pending is not None
    report = Purger(redis, default_region="FR").purge("0612345678", actor="test")
    assert report.deleted_callback_events == 1
    dispatcher.outbox.dead(pending.event_id, reason="HTTP 410", attempts=1)
    assert dead_callbacks(redis) == []
    assert redis.exists(keys.dead_callback(pending.event_id), keys.CALLBACK_DEAD) == 0
    assert metric(redis, "callbacks_dead") == 0
