"""``smsq purge --phone``: one person's data leaves every place smsq keeps it."""

from __future__ import annotations

import json

from redis import Redis

from producers.enqueue import Producer
from producers.store import MessageStore
from tests.helpers.processes import Workers
from tests.helpers.redis_dump import redis_dump
from worker.sandbox import SandboxProvider


def test_purge_erases_a_person_and_keeps_everyone_else(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """Single-recipient messages go; shared ones lose that person's entry; others stay."""
    sandbox.add_fault({"action": "status", "status": 114, "match": {"campaign": "rej"}})
    producer.enqueue_many(
        [
            {"key": "only-her", "text": "Hi", "to": ["06 12 34 56 78"]},
            {"key": "rejected-her", "text": "Hi", "to": ["0612345678"], "campaign": "rej"},
            {
                "key": "shared",
                "text": "Hi #param_1#",
                "to": [
                    {"phone": "0612345678", "params": ["Zoé Martin"]},
                    {"phone": "0698765432", "params": ["Bob"]},
                ],
            },
            {"key": "other", "text": "Hi", "to": ["0698765432"]},
        ]
    )
    redis.rpush("smsq:intake", json.dumps({"key": "bad", "to": ["+33 6 12 34 56 78"]}))
    workers.run_burst()
    redis.rpush("smsq:intake", json.dumps({"key": "later", "text": "x", "to": ["0612345678"]}))
    held = json.dumps({"key": "held", "text": "x", "to": ["06 12 34 56 78"]})
    redis.rpush("smsq:intake:processing:w-gone", held)
    redis.rpush("smsq:intake:poison", held)

    text = workers.smsq("purge", "--phone", "+33612345678", "--dry-run")
    dry = workers.smsq("purge", "--phone", "+33612345678", "--dry-run", "--json")
    real = workers.smsq("purge", "--phone", "+33612345678", "--json")

    assert dry.returncode == real.returncode == 0
    report = json.loads(real.stdout)
    assert sorted(report["deleted_messages"]) == ["only-her", "rejected-her"]
    assert report["redacted_messages"] == ["shared"]
    assert len(report["deleted_dead_letters"]) == 1
    assert report["deleted_intake_entries"] == 3
    assert len(report["erasure_id"]) == 32
    assert json.loads(dry.stdout) == {**report, "dry_run": True, "erasure_id": ""}
    assert text.stdout.splitlines() == [
        "would delete 2 message(s) sent only to this number: only-her, rejected-her",
        "would remove the number from 1 message(s) sent to several people: shared",
        "would delete 1 dead letter(s) and 3 intake entry(ies)",
        "would delete 0 waiting and 0 dead callback(s); would remove the number from 0 waiting "
        "and 0 dead callback(s)",
        "dry run: nothing changed",
    ]
    dump = redis_dump(redis)
    assert b"612345678" not in dump
    assert "Zoé".encode() not in dump
    assert store.get("only-her") is None
    shared = store.get("shared")
    assert shared is not None
    assert shared.request["to"] == [{"phone": "33698765432", "params": ["Bob"]}]
    assert list(shared.sms_ids) == ["33698765432"]
    assert store.get("other") is not None
    assert [d.key for d in store.dead_letters()] == []


def test_purge_refuses_something_that_is_not_a_number(workers: Workers) -> None:
    """A bad --phone is refused with the reason."""
    result = workers.smsq("purge", "--phone", "hello")
    assert (result.returncode, result.stderr) == (
        1,
        "smsq: --phone: not a phone number (not a number)\n",
    )


def test_purge_erases_a_persons_receipt_reply_and_smsid(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """Her receipt, her reply (her own words) and her smsId index go; Bob's stay."""
    producer.enqueue({"key": "shared", "text": "Hi", "to": ["0612345678", "0698765432"]})
    workers.run_burst()
    record = store.get("shared")
    assert record is not None
    hers, bobs = record.sms_ids["33612345678"], record.sms_ids["33698765432"]
    mid = record.message_id
    for sms_id, mo in ((hers, "mo-her"), (bobs, "mo-bob")):
        redis.hset(f"smsq:receipts:{mid}", sms_id, json.dumps({"status": 1}))
        redis.hset(
            f"smsq:replies:{mid}",
            mo,
            json.dumps({"sms_mo_id": mo, "message": f"reply {mo}", "sms_id": sms_id}),
        )
    assert redis.get(f"smsq:smsid:{hers}") == mid.encode()

    assert workers.smsq("purge", "--phone", "0612345678").returncode == 0

    assert redis.hkeys(f"smsq:receipts:{mid}") == [bobs.encode()]
    assert redis.hkeys(f"smsq:replies:{mid}") == [b"mo-bob"]
    assert redis.exists(f"smsq:smsid:{hers}") == 0
    assert redis.get(f"smsq:smsid:{bobs}") == mid.encode()
