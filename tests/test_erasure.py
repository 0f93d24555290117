"""``smsq purge --phone`` reaches the callback outbox (waiting and dead callbacks), dead
callbacks expire by themselves, and each purge leaves an erasure record without the number."""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
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
    for mo_id, phone in (("mo-held-her", HER), ("mo-held-bob", BOB)):  # getPulls, not matched yet
        held = {"mo": {"mo_id": mo_id, "phone": phone, "text": HER_WORDS}, "held_at": 1.0}
        redis.hset(keys.POLLED_REPLIES, mo_id, json.dumps(held))
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
        "deleted_held_replies": 1,
    }
    assert redis.hkeys(keys.POLLED_REPLIES) == [b"mo-held-bob"]
    redis.delete(keys.POLLED_REPLIES)  # Bob's words (the same test text) would match below
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
        "count": 11,
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
            "held_replies_deleted": 1,
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


MOBILES = st.integers(min_value=0, max_value=99_999_999).map(lambda n: f"336{n:08d}")
OFFLINE = Purger(Redis(), default_region="FR")
"""Deciding about one envelope needs no Redis (the client never connects)."""


@given(
    others=st.sets(MOBILES, max_size=5),
    target=MOBILES,
    target_in=st.sampled_from(["sms_ids", "invalid_numbers", "neither"]),
    invalid=st.sets(MOBILES, max_size=3),
    fate=st.sampled_from(["deleted", "redacted", "expired"]),
)
def test_a_final_event_never_keeps_the_number_nor_loses_anyone_else(
    others: set[str], target: str, target_in: str, invalid: set[str], fate: str
) -> None:
    """Erased from any final event, the target's digits are gone and every other entry stays;
    the event goes only when its message goes, or it names nobody and its message is gone."""
    others -= {target}
    invalid -= others | {target}
    sms_ids = {p: f"id-{p}" for p in others} | ({target: "id-t"} if target_in == "sms_ids" else {})
    invalid_numbers = sorted(invalid | ({target} if target_in == "invalid_numbers" else set()))
    event = {
        "event": "message.final",
        "message_id": "m1",
        "key": "k",
        "sms_ids": json.dumps(sms_ids),
        "invalid_numbers": json.dumps(invalid_numbers),
    }
    ids = {"deleted_ids": {"m1"} if fate == "deleted" else set()}
    ids["redacted_ids"] = {"m1"} if fate == "redacted" else set()

    out = OFFLINE.erased_envelope({"url": "u", "event": event}, target, **ids)

    if fate == "deleted":
        assert out == ""
    elif target_in == "neither":
        assert out is None
    elif not others and not invalid and fate == "expired":
        assert out == ""
    else:
        assert out is not None
        assert target[-9:] not in out
        kept = json.loads(out)["event"]
        assert json.loads(kept["sms_ids"]) == {p: f"id-{p}" for p in others}
        assert json.loads(kept["invalid_numbers"]) == sorted(invalid)


@given(phone=MOBILES, other=MOBILES, form=st.sampled_from(["e164", "plus", "national", "spaced"]))
def test_a_receipt_or_reply_event_goes_when_it_is_hers_in_any_form(
    phone: str, other: str, form: str
) -> None:
    national = "0" + phone[2:]
    shown = {
        "e164": phone,
        "plus": f"+{phone}",
        "national": national,
        "spaced": " ".join(national[i : i + 2] for i in range(0, 10, 2)),
    }[form]
    for kind in ("message.receipt", "message.reply"):
        event = {"event": kind, "message_id": "m1", "phone": shown, "message": "hi"}
        assert OFFLINE.erased_envelope({"event": event}, phone) == ""
        if other != phone:
            assert OFFLINE.erased_envelope({"event": event}, other) is None
