"""``smsq export --phone``: everything smsq holds about one person, and nothing about others."""

from __future__ import annotations

import json

from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.optouts import OptOuts, Source
from tests.helpers.callbacks import finish_sent
from tests.helpers.processes import Workers
from worker.settings import Settings
from worker.store.receipts import Receipt, ReceiptBook, Reply


ANNE, BRUNO = "33612345678", "33698765432"
OPEN = {
    "SMSQ_MARKETING_HOURS": "00:00-24:00",
    "SMSQ_MARKETING_DAYS": "mon-sun",
    "SMSQ_MARKETING_HOLIDAYS": "0",
}


def test_export_holds_her_messages_texts_receipts_and_opt_out_and_no_one_else(
    redis: Redis, producer: Producer, workers: Workers
) -> None:
    producer.enqueue({"key": "code", "to": ["0612345678"], "text": "Code 1234"})
    producer.enqueue(
        {
            "key": "promo",
            "to": [
                {"phone": "0612345678", "params": ["Anne"]},
                {"phone": "0698765432", "params": ["Bruno"]},
            ],
            "text": "Bonjour #param_1#",
            "campaign": "winter",
        }
    )
    producer.enqueue({"key": "other", "to": ["0698765432"], "text": "Code 9876"})
    assert workers.run_burst(**OPEN).returncode == 0
    producer.connection.rpush("smsq:intake:poison", json.dumps({"key": "bad", "to": "0612345678"}))
    OptOuts(redis).add(ANNE, source=Source.REPLY, comment="smsMoId mo-1")

    done = workers.smsq("export", "--phone", "06 12 34 56 78", "--why", "ticket 42", "--by", "dpo")
    audit = workers.smsq("audit", "--json")
    bad = workers.smsq("export", "--phone", "12")

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["phone"] == ANNE
    assert [(m["key"], m["state"], m["text"]) for m in data["messages"]] == [
        ("code", "sent", "Code 1234"),
        ("promo", "sent", "Bonjour Anne"),
    ]
    promo = data["messages"][1]
    assert (promo["campaign"], promo["recipients"], promo["purpose"]) == (
        "winter",
        2,
        "transactional",
    )
    assert promo["sms_id"]
    assert [h["state"] for h in promo["history"]][-1] == "sent"
    assert data["opt_out"] == {
        "at": data["opt_out"]["at"],
        "source": "reply",
        "comment": "smsMoId mo-1",
    }
    assert data["intake_entries"] == [{"list": "smsq:intake:poison", "key": "bad"}]
    assert "98765432" not in done.stdout
    assert "Bruno" not in done.stdout
    [entry] = [json.loads(line) for line in audit.stdout.splitlines() if '"export"' in line]
    assert (entry["actor"], entry["why"], entry["count"]) == ("dpo", "ticket 42", 4)
    assert "612345678" not in audit.stdout
    assert (bad.returncode, bad.stderr.startswith("smsq: --phone: ")) == (1, True)


def test_receipts_and_replies_keep_their_own_retention(redis: Redis, producer: Producer) -> None:
    """SMSQ_REPLIES_TTL_S caps how long a reply (a person's words) and a receipt stay; 0 keeps
    them as long as their message."""
    mid = finish_sent(
        redis, producer, "ttl", callback_url=None, sms_ids={ANNE: "ttl-a", BRUNO: "ttl-b"}
    )
    short, plain = ReceiptBook(redis, keep_s=600), ReceiptBook(redis)

    short.store_reply(Reply("mo-1", "STOP", sms_id="ttl-a", phone=ANNE), event_id="e1")
    short.apply_receipt(Receipt("ttl-a", 1), event_id="e2")
    message_ttl = redis.ttl(keys.message(mid))
    assert 0 < redis.ttl(keys.replies(mid)) <= 600 < message_ttl
    assert 0 < redis.ttl(keys.receipts(mid)) <= 600
    redis.delete(keys.replies(mid), keys.receipts(mid))
    plain.store_reply(Reply("mo-2", "merci", sms_id="ttl-b", phone=BRUNO), event_id="e3")
    assert redis.ttl(keys.replies(mid)) > 600
    assert Settings.from_env({"SMSQ_REPLIES_TTL_S": "600"}).replies_ttl_s == 600
