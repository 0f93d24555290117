"""Delivery receipts and replies over real sockets: the webhook endpoints, the store, and the
whole loop with a real worker, the sandbox playing AllMySMS's receipts and signed callbacks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis import Redis
from starlette.applications import Starlette

from producers import keys
from producers.enqueue import Producer
from producers.store import MessageStore
from tests.helpers.callbacks import SHOP_SECRET, Receiver, finish_sent, metric, settings
from tests.helpers.processes import API_KEY, LOGIN, Workers, wait_for
from worker.admin.metrics import render
from worker.admin.server import running
from worker.callbacks.dispatcher import Dispatcher
from worker.cli.commands import main
from worker.cli.text import render_status
from worker.dev.redis_server import RedisServer
from worker.gateway.webhooks import WEBHOOK_MAX_BODY_BYTES, webhook_routes
from worker.sandbox import SandboxProvider
from worker.settings import Secret
from worker.store.purge import Purger


WEBHOOK_SECRET = "wh-" + "3f9a1c7e" * 5
PHONE_A, PHONE_B = "33612345678", "33698765432"


@pytest.fixture
def webhooks(redis: Redis) -> Iterator[str]:
    """Base URL of the webhooks with the right secret (``.../webhooks/allmysms/<secret>``)."""
    app = Starlette(routes=webhook_routes(settings(webhook_secret=Secret(WEBHOOK_SECRET)), redis))
    with running(app) as base:
        yield f"{base}/webhooks/allmysms/{WEBHOOK_SECRET}"


def receipt(sms_id: str, status: int, **extra: str) -> dict[str, str]:
    return {
        "smsId": sms_id,
        "status": str(status),
        "statusText": f"text {status}",
        "phoneNumber": "33612345678",
        "receptionDate": "2026-11-25 10:00:0" + str(status),
        "campaignId": "cmp-1",
        **extra,
    }


def stored_receipts(redis: Redis, mid: str) -> dict[bytes, bytes]:
    return redis.hgetall(keys.receipts(mid))  # type: ignore[return-value]


def test_webhooks_are_off_without_a_secret(redis: Redis) -> None:
    assert webhook_routes(settings(), redis) == []


def test_finish_indexes_sms_ids_with_the_outcome_ttl(redis: Redis, producer: Producer) -> None:
    mid = finish_sent(redis, producer, "idx", callback_url=None)
    assert redis.get(keys.sms_id("idx-a")) == mid.encode()
    assert redis.get(keys.sms_id("idx-b")) == mid.encode()
    assert 3590 <= redis.ttl(keys.sms_id("idx-a")) <= 3600


def test_receipt_is_stored_per_recipient(
    redis: Redis, producer: Producer, webhooks: str, store: MessageStore
) -> None:
    mid = finish_sent(redis, producer, "r1", callback_url=None)
    answer = httpx.post(f"{webhooks}/receipts", data=receipt("r1-a", 1))
    assert (answer.status_code, answer.text) == (200, "OK")
    record = store.get("r1")
    assert record is not None
    assert record.receipts == {
        PHONE_A: {
            "status": 1,
            "outcome": "delivered",
            "final": True,
            "status_text": "text 1",
            "reception_date": "2026-11-25 10:00:01",
            "sms_id": "r1-a",
            "received_at": record.receipts[PHONE_A]["received_at"],
        }
    }
    assert record.delivery == {"delivered": 1, "failed": 0, "pending": 1}
    assert record.history[-1] == {
        "state": "receipt",
        "at": record.history[-1]["at"],
        "sms_id": "r1-a",
        "status": 1,
        "outcome": "delivered",
    }
    assert 3500 <= redis.ttl(keys.receipts(mid)) <= 3600
    assert metric(redis, "receipts_applied") == 1
    assert metric(redis, "receipt_status:1") == 1
    text = render_status(record)
    assert "delivery:   1 delivered, 0 failed, 1 pending" in text
    assert f"  sent      {PHONE_A}  smsId r1-a  delivered (1) 2026-11-25 10:00:01" in text
    assert f"  sent      {PHONE_B}  smsId r1-b  (no receipt yet)" in text


def test_replayed_receipt_changes_nothing_and_is_counted(
    redis: Redis, producer: Producer, webhooks: str, receiver: Receiver
) -> None:
    mid = finish_sent(redis, producer, "r2", callback_url=receiver.start())
    redis.delete(keys.CALLBACK_DUE)  # the final event: not what this test looks at
    assert httpx.post(f"{webhooks}/receipts", data=receipt("r2-a", 1)).text == "OK"
    before = stored_receipts(redis, mid)
    history = redis.lrange(keys.history(mid), 0, -1)
    for _ in range(3):
        answer = httpx.get(f"{webhooks}/receipts", params=receipt("r2-a", 1))
        assert (answer.status_code, answer.text) == (200, "OK")
    assert stored_receipts(redis, mid) == before
    assert redis.lrange(keys.history(mid), 0, -1) == history
    assert metric(redis, "receipts_duplicate") == 3
    assert metric(redis, "receipts_applied") == 1
    assert redis.zcard(keys.CALLBACK_DUE) == 1  # one receipt event, not four
    exposition = render(redis).decode()
    assert 'smsq_receipts_total{result="duplicate"} 3.0' in exposition
    assert 'smsq_receipts_total{result="applied"} 1.0' in exposition
    assert 'smsq_receipt_statuses_total{status="1"} 1.0' in exposition


def test_late_transmitted_never_overwrites_delivered(
    redis: Redis, producer: Producer, webhooks: str, store: MessageStore
) -> None:
    mid = finish_sent(redis, producer, "r3", callback_url=None)
    assert httpx.post(f"{webhooks}/receipts", data=receipt("r3-a", 1)).text == "OK"
    before = stored_receipts(redis, mid)
    assert httpx.post(f"{webhooks}/receipts", data=receipt("r3-a", 3)).text == "OK"
    assert stored_receipts(redis, mid) == before
    assert metric(redis, "receipts_stale") == 1
    # In order, 3 then 1, both count; a different final status after a final one does not.
    assert httpx.post(f"{webhooks}/receipts", data=receipt("r3-b", 3)).text == "OK"
    assert httpx.post(f"{webhooks}/receipts", data=receipt("r3-b", 5)).text == "OK"
    assert httpx.post(f"{webhooks}/receipts", data=receipt("r3-b", 1)).text == "OK"
    record = store.get("r3")
    assert record is not None
    assert {p: (r["status"], r["outcome"]) for p, r in record.receipts.items()} == {
        PHONE_A: (1, "delivered"),
        PHONE_B: (5, "sms_rejected"),
    }
    assert record.delivery == {"delivered": 1, "failed": 1, "pending": 0}
    assert metric(redis, "receipts_stale") == 2
    assert [(h["sms_id"], h["status"]) for h in record.history if h["state"] == "receipt"] == [
        ("r3-a", 1),
        ("r3-b", 3),
        ("r3-b", 5),
    ]


@pytest.mark.parametrize("path_secret", ["wrong", WEBHOOK_SECRET[:-1] + "x", ""])
def test_bad_secret_is_404_and_stores_nothing(
    redis: Redis, producer: Producer, webhooks: str, path_secret: str
) -> None:
    mid = finish_sent(redis, producer, "r4", callback_url=None)
    base = webhooks.rsplit("/", 1)[0]
    for kind in ("receipts", "replies"):
        answer = httpx.post(
            f"{base}/{path_secret}/{kind}", data=receipt("r4-a", 1, smsMoId="mo-1", message="hi")
        )
        assert answer.status_code == 404
        assert WEBHOOK_SECRET not in answer.text
    assert stored_receipts(redis, mid) == {}
    assert redis.hlen(keys.replies(mid)) == 0
    assert metric(redis, "receipts_unknown") == 0


def test_oversized_body_is_413(redis: Redis, producer: Producer, webhooks: str) -> None:
    mid = finish_sent(redis, producer, "r5", callback_url=None)
    big = receipt("r5-a", 1, statusText="x" * WEBHOOK_MAX_BODY_BYTES)
    answer = httpx.post(f"{webhooks}/receipts", data=big)
    assert (answer.status_code, answer.text) == (413, "body larger than 16384 bytes\n")

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b"smsId=r5-a&status=1&statusText="
        for _ in range(20):
            yield b"x" * 1024

    answer = httpx.post(
        f"{webhooks}/receipts",
        content=chunked(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413
    assert stored_receipts(redis, mid) == {}


def test_unknown_sms_id_is_ok_and_counted(redis: Redis, webhooks: str) -> None:
    answer = httpx.post(f"{webhooks}/receipts", data=receipt("not-ours", 1))
    assert (answer.status_code, answer.text) == (200, "OK")
    answer = httpx.post(
        f"{webhooks}/replies", data={"smsMoId": "mo-9", "message": "hi", "smsId": "not-ours"}
    )
    assert (answer.status_code, answer.text) == (200, "OK")
    assert metric(redis, "receipts_unknown") == 1
    assert metric(redis, "replies_unknown") == 1
    assert redis.keys("*") == [keys.METRICS.encode()]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "1"}, "smsId: is required"),
        ({"smsId": "x1"}, "status: is required"),
        ({"smsId": "x1", "status": "9"}, "status: must be 1, 2, 3, 4 or 5"),
        (
            {"smsId": "x 1", "status": "1"},
            "smsId: must be 1 to 100 letters, digits, '.', '_', ':' or '-'",
        ),
        (
            {"smsId": "x1", "status": "1", "receptionDate": "25/11/2026"},
            "receptionDate: must be YYYY-MM-DD HH:MM:SS",
        ),
        (
            {"smsId": "x1", "status": "1", "phoneNumber": "call me"},
            "phoneNumber: must be 6 to 20 digits",
        ),
    ],
)
def test_bad_receipt_params_are_400_naming_the_field(
    redis: Redis, webhooks: str, params: dict[str, str], expected: str
) -> None:
    answer = httpx.post(f"{webhooks}/receipts", data=params)
    assert (answer.status_code, answer.text) == (400, expected + "\n")
    assert metric(redis, "receipts_unknown") == 0


def test_bad_reply_params_are_400_naming_the_field(webhooks: str) -> None:
    answer = httpx.post(f"{webhooks}/replies", data={"smsMoId": "mo-1", "smsId": "x"})
    assert (answer.status_code, answer.text) == (400, "message: is required\n")
    answer = httpx.post(f"{webhooks}/replies", data={"message": "hi", "smsId": "x"})
    assert (answer.status_code, answer.text) == (400, "smsMoId: is required\n")


def test_a_call_without_parameters_is_a_registration_probe(redis: Redis, webhooks: str) -> None:
    for kind in ("receipts", "replies"):
        answer = httpx.get(f"{webhooks}/{kind}")
        assert (answer.status_code, answer.text) == (200, "OK")
    assert redis.keys("*") == []


def test_receipt_as_query_and_as_multipart(
    redis: Redis, producer: Producer, webhooks: str, store: MessageStore
) -> None:
    finish_sent(redis, producer, "r6", callback_url=None)
    assert httpx.get(f"{webhooks}/receipts", params=receipt("r6-a", 2)).text == "OK"
    answer = httpx.post(
        f"{webhooks}/receipts", files={"unused": (None, "")}, data=receipt("r6-b", 4)
    )
    assert (answer.status_code, answer.text) == (200, "OK")
    record = store.get("r6")
    assert record is not None
    assert {p: r["outcome"] for p, r in record.receipts.items()} == {
        PHONE_A: "not_delivered",
        PHONE_B: "message_rejected",
    }
    assert record.delivery == {"delivered": 0, "failed": 2, "pending": 0}


def test_replies_are_stored_once_and_readable(
    redis: Redis,
    redis_server: RedisServer,
    producer: Producer,
    webhooks: str,
    store: MessageStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mid = finish_sent(redis, producer, "r7", callback_url=None)
    reply = {
        "smsMoId": "mo-1",
        "message": "Oui, merci é",
        "smsId": "r7-b",
        "phoneNumber": "+33698765432",
        "receptionDate": "2026-11-25 10:01:00",
        "campaignId": "cmp-1",
    }
    for _ in range(2):
        answer = httpx.post(f"{webhooks}/replies", data=reply)
        assert (answer.status_code, answer.text) == (200, "OK")
    record = store.get("r7")
    assert record is not None
    assert record.replies == [
        {
            "sms_mo_id": "mo-1",
            "message": "Oui, merci é",
            "sms_id": "r7-b",
            "phone": PHONE_B,
            "reception_date": "2026-11-25 10:01:00",
            "campaign_id": "cmp-1",
            "received_at": record.replies[0]["received_at"],
        }
    ]
    assert store.replies("r7") == record.replies
    assert metric(redis, "replies_received") == 1
    assert metric(redis, "replies_duplicate") == 1
    assert 3500 <= redis.ttl(keys.replies(mid)) <= 3600
    assert "replies:    1 (smsq replies 'r7')" in render_status(record)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    capsys.readouterr()
    assert main(["replies", "r7"]) == 0
    assert capsys.readouterr().out == f"2026-11-25 10:01:00  {PHONE_B}  Oui, merci é\n"


def test_receipt_event_is_queued_for_the_callback(
    redis: Redis, producer: Producer, webhooks: str, receiver: Receiver
) -> None:
    mid = finish_sent(redis, producer, "r8", callback_url=receiver.start(), producer_login="shop")
    assert httpx.post(f"{webhooks}/receipts", data=receipt("r8-a", 3)).text == "OK"
    dispatcher = Dispatcher(settings(), redis)
    while (pending := dispatcher.outbox.take()) is not None:
        assert dispatcher.deliver(pending) == "delivered"
    final, transmitted = receiver.events()
    assert final["event"] == "message.final"
    assert transmitted == {
        "event": "message.receipt",
        "event_id": transmitted["event_id"],
        "key": "r8",
        "message_id": mid,
        "state": "sent",
        "provider_status": 100,
        "at": transmitted["at"],
        "phone": PHONE_A,
        "sms_id": "r8-a",
        "status": 3,
        "outcome": "transmitted",
        "final": False,
        "status_text": "text 3",
        "reception_date": "2026-11-25 10:00:03",
        "campaign_id": "cmp-1",
    }


def test_a_new_reply_is_called_back_once_with_its_text(
    redis: Redis, producer: Producer, webhooks: str, receiver: Receiver
) -> None:
    """A reply to a message with a callback_url becomes one ``message.reply`` event, signed;
    the same smsMoId again (AllMySMS retrying its call) adds none."""
    mid = finish_sent(redis, producer, "r9", callback_url=receiver.start(), producer_login="shop")
    reply = {
        "smsMoId": "mo-9",
        "message": "STOP merci é",
        "smsId": "r9-b",
        "phoneNumber": "+33698765432",
        "receptionDate": "2026-11-25 10:02:00",
    }
    for _ in range(2):
        assert httpx.post(f"{webhooks}/replies", data=reply).text == "OK"
    dispatcher = Dispatcher(settings(), redis)
    outcomes = []
    while (pending := dispatcher.outbox.take()) is not None:
        outcomes.append(dispatcher.deliver(pending))

    assert outcomes == ["delivered", "delivered"]
    final, answered = receiver.events()
    assert final["event"] == "message.final"
    assert answered == {
        "event": "message.reply",
        "event_id": answered["event_id"],
        "key": "r9",
        "message_id": mid,
        "at": answered["at"],
        "phone": PHONE_B,
        "sms_id": "r9-b",
        "sms_mo_id": "mo-9",
        "message": "STOP merci é",
        "reception_date": "2026-11-25 10:02:00",
        "campaign_id": "cmp-1",
    }
    last = receiver.received[-1]
    assert last.verified(SHOP_SECRET) == answered


def test_sandbox_receipts_update_the_store_and_callbacks_arrive_signed(
    redis: Redis,
    producer: Producer,
    sandbox: SandboxProvider,
    workers: Workers,
    webhooks: str,
    receiver: Receiver,
    store: MessageStore,
) -> None:
    """The whole loop on one machine: enqueue with a callback → real worker → sandbox → the
    sandbox's receipts hit the webhooks → the store → signed callbacks to the producer."""
    sandbox.set_receipts_url(f"{webhooks}/receipts", f"{webhooks}/replies", delay_ms=200)
    url = receiver.start()
    producer.enqueue(
        {
            "key": "loop",
            "to": ["0612345678", "0611777777", "0611555555"],
            "text": "Votre colis arrive",
            "callback_url": url,
            "producer": "shop",
        },
        source="gateway",  # the account's secret signs the callbacks
    )
    run = workers.run_burst()
    assert run.returncode == 0, run.log
    delivered, rejected, replying = "33612345678", "33611777777", "33611555555"
    wait_for(lambda: len(sandbox.receipts.log()) == 7, what="6 receipts and 1 reply")
    assert all(call["http_status"] == 200 for call in sandbox.receipts.log())
    record = store.get("loop")
    assert record is not None
    assert record.state.value == "sent"
    assert {p: (r["status"], r["sms_id"]) for p, r in record.receipts.items()} == {
        delivered: (1, record.sms_ids[delivered]),
        rejected: (5, record.sms_ids[rejected]),
        replying: (1, record.sms_ids[replying]),
    }
    assert record.delivery == {"delivered": 2, "failed": 1, "pending": 0}
    assert [(r["phone"], r["message"]) for r in record.replies] == [(replying, "OUI")]

    dispatcher = Dispatcher(settings(), redis)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: len(receiver.received) == 8, what="1 final, 6 receipt and 1 reply callbacks"
        )
    finally:
        stop.set()
        thread.join(5)
    for got in receiver.received:
        assert got.verified(SHOP_SECRET) == got.event
        assert got.headers["webhook-id"] == got.event["event_id"]
        assert b"colis" not in got.body  # the message's own text is never called back
    events = receiver.events()
    assert len({e["event_id"] for e in events}) == 8
    assert (events[0]["event"], events[0]["state"], events[0]["sms_ids"]) == (
        "message.final",
        "sent",
        record.sms_ids,
    )
    replies = [e for e in events if e["event"] == "message.reply"]
    assert [(e["key"], e["phone"], e["message"]) for e in replies] == [("loop", replying, "OUI")]
    by_phone: dict[str, list[Any]] = {}
    for event in events[1:]:
        if event["event"] == "message.reply":
            continue
        assert (event["event"], event["key"], event["state"]) == ("message.receipt", "loop", "sent")
        by_phone.setdefault(event["phone"], []).append(event["status"])
    assert by_phone == {delivered: [3, 1], rejected: [3, 5], replying: [3, 1]}
    assert metric(redis, "callbacks_delivered") == 8
    assert json.loads(json.dumps(record.as_dict()))["delivery"] == record.delivery


def test_purged_number_is_unlinked_from_receipts_and_replies(
    redis: Redis, producer: Producer, webhooks: str, store: MessageStore
) -> None:
    mid = finish_sent(redis, producer, "r9", callback_url=None)
    assert httpx.post(f"{webhooks}/receipts", data=receipt("r9-b", 1)).text == "OK"
    assert (
        httpx.post(
            f"{webhooks}/replies", data={"smsMoId": "mo-2", "message": "stop", "smsId": "r9-b"}
        ).text
        == "OK"
    )
    Purger(redis, default_region="FR").purge("0698765432", actor="test")
    record = store.get("r9")
    assert record is not None
    assert (record.receipts, record.replies) == ({}, [])
    assert httpx.post(f"{webhooks}/receipts", data=receipt("r9-b", 2)).text == "OK"
    assert metric(redis, "receipts_unknown") == 1
    stored = [
        *redis.hgetall(keys.receipts(mid)).items(),
        *redis.hgetall(keys.replies(mid)).items(),
        redis.lrange(keys.history(mid), 0, -1),
    ]
    assert b"698765432" not in repr(stored).encode()


def test_sandbox_control_api_sets_the_receipts_url_and_logs_the_calls(
    sandbox: SandboxProvider, receiver: Receiver
) -> None:
    url = receiver.start()
    control = sandbox.base_url.replace("/http/9.0", "/_sandbox/receipts")
    assert httpx.post(control, json={"receipts_url": "ftp://x"}).status_code == 400
    assert httpx.post(control, json={"receipts_url": url, "delay_ms": 0}).status_code == 200
    flux = {
        "DATA": {
            "MESSAGE": "hi",
            "SMS": [{"MOBILEPHONE": "33611777777"}, {"MOBILEPHONE": "33612345678"}],
        }
    }
    answer = httpx.post(
        f"{sandbox.base_url}/sendSms/",
        data={
            "login": LOGIN,
            "apiKey": API_KEY,
            "smsData": json.dumps(flux),
            "returnformat": "json",
        },
    )
    sms_ids = {s["phoneNumber"]: s["smsId"] for s in answer.json()["smsIds"]}
    wait_for(lambda: len(httpx.get(control).json()) == 4, what="4 receipt calls")
    calls = httpx.get(control).json()
    assert sorted((c["phoneNumber"], c["status"], c["smsId"], c["http_status"]) for c in calls) == [
        ("33611777777", "3", sms_ids["33611777777"], 200),
        ("33611777777", "5", sms_ids["33611777777"], 200),
        ("33612345678", "1", sms_ids["33612345678"], 200),
        ("33612345678", "3", sms_ids["33612345678"], 200),
    ]
    bodies = sorted(r.body.decode() for r in receiver.received)
    assert all("receptionDate=" in b and "campaignId=sbx_" in b for b in bodies)
    assert httpx.delete(control).status_code == 200
    assert httpx.get(control).json() == []
