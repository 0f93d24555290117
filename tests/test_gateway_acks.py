"""The gateway's getAcks and getAckBySmsId: delivery receipts of a producer's own messages,
answered from smsq's store in AllMySMS's shape. Over real sockets: the gateway under uvicorn,
the sandbox as AllMySMS, receipts posted to the gateway's own webhook."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from redis import Redis

from producers.store import MessageStore
from tests.helpers.gateway import BLOG, SHOP, json_flux, post
from tests.helpers.gateway_api import (
    NOT_FOUND,
    SMS_NOT_FOUND,
    api_settings,
    ask,
    call,
    enqueue,
    receipt,
    send,
)
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.sandbox import SandboxProvider


PHONES = ("33612345678", "33698765432")
NO_ACK_YET = {"status": 0, "statusText": "No acknowledgement yet for this SMS"}


@pytest.fixture
def base(redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider) -> Iterator[str]:
    """The gateway (AllMySMS = the sandbox, webhooks on) under uvicorn; yields its base URL."""
    with running(create_app(api_settings(redis_server.url, sandbox), redis)) as base_url:
        yield base_url


def sent(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> tuple[str, dict[str, str]]:
    """A message to both PHONES sent by a worker: its campaignId and AllMySMS's smsIds."""
    campaign = enqueue(base, CLIMSGID="order-17", SMS=[{"MOBILEPHONE": p} for p in PHONES])
    send(redis, sandbox, campaign)
    record = store.get_by_id(campaign)
    assert record is not None
    assert set(record.sms_ids) == set(PHONES)
    return campaign, record.sms_ids


def test_get_acks_lists_the_receipts_in_request_order(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """Recipients with a receipt are listed in request order, with statut, comment and
    receptionDate; AllMySMS is not asked."""
    campaign, provider_ids = sent(base, redis, sandbox, store)

    before = ask(base, "getAcks", campId=campaign)
    receipt(base, provider_ids[PHONES[1]], 1, "Delivered", "2026-12-07 10:00:01")
    one = ask(base, "getAcks", campId=campaign)
    receipt(base, provider_ids[PHONES[0]], 5, "Unknown number", "2026-12-07 10:00:05")
    both = ask(base, "getAcks", campId=campaign)

    assert before == {"acks": [], "cliMsgId": "order-17"}
    assert one == {
        "acks": [
            {
                "phoneNumber": PHONES[1],
                "statut": "1",
                "comment": "Delivered",
                "receptionDate": "2026-12-07 10:00:01",
            }
        ],
        "cliMsgId": "order-17",
    }
    assert both["acks"] == [
        {
            "phoneNumber": PHONES[0],
            "statut": "5",
            "comment": "Unknown number",
            "receptionDate": "2026-12-07 10:00:05",
        },
        one["acks"][0],
    ]
    # Answered from smsq's store: AllMySMS saw the one sendSms only.
    assert [r.get("endpoint", "sendSms") for r in sandbox.requests()] == ["sendSms"]


def test_a_transmitted_receipt_is_listed_and_a_final_one_replaces_it(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """A 3 (transmitted) is answered until a final receipt replaces it."""
    campaign, provider_ids = sent(base, redis, sandbox, store)
    receipt(base, provider_ids[PHONES[0]], 3, "Transmitted")
    transmitted = ask(base, "getAckBySmsId", smsId=f"{campaign}-1")
    receipt(base, provider_ids[PHONES[0]], 1, "Delivered")
    delivered = ask(base, "getAckBySmsId", smsId=f"{campaign}-1")

    assert transmitted == {
        "phoneNumber": PHONES[0],
        "statut": "3",
        "comment": "Transmitted",
        "receptionDate": "2026-12-07 10:00:03",
    }
    assert delivered == {
        "phoneNumber": PHONES[0],
        "statut": "1",
        "comment": "Delivered",
        "receptionDate": "2026-12-07 10:00:01",
    }


def test_get_ack_by_sms_id_answers_one_recipient_or_says_why_not(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """One recipient's ack, else no receipt yet, else SMS not found (out of range, bare, provider's
    or another producer's id)."""
    campaign, provider_ids = sent(base, redis, sandbox, store)
    receipt(base, provider_ids[PHONES[0]], 2, "Not delivered")

    assert ask(base, "getAckBySmsId", smsId=f"{campaign}-1") == {
        "phoneNumber": PHONES[0],
        "statut": "2",
        "comment": "Not delivered",
        "receptionDate": "2026-12-07 10:00:02",
    }
    assert ask(base, "getAckBySmsId", smsId=f"{campaign}-2") == NO_ACK_YET
    assert ask(base, "getAckBySmsId", smsId=f"{campaign}-3") == SMS_NOT_FOUND
    assert ask(base, "getAckBySmsId", smsId=campaign) == SMS_NOT_FOUND
    assert ask(base, "getAckBySmsId", smsId=provider_ids[PHONES[0]]) == SMS_NOT_FOUND
    assert ask(base, "getAckBySmsId", BLOG, smsId=f"{campaign}-1") == SMS_NOT_FOUND
    assert ask(base, "getAckBySmsId", smsId=" ") == {
        "status": 0,
        "statusText": "smsId is required",
    }


def test_another_producers_unknown_and_blank_campaigns_are_not_found(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """Another producer's, an unknown, a huge or a provider's campId is not found; a blank one is
    named; a bad key is 102."""
    campaign, provider_ids = sent(base, redis, sandbox, store)
    receipt(base, provider_ids[PHONES[0]], 1)
    blog_own = enqueue(base, BLOG, MESSAGE="blog")

    assert ask(base, "getAcks", BLOG, campId=campaign) == NOT_FOUND
    assert ask(base, "getAcks", campId=blog_own) == NOT_FOUND
    assert ask(base, "getAcks", BLOG, campId=blog_own)["acks"] == []
    assert ask(base, "getAcks", campId="0" * 32) == NOT_FOUND
    assert ask(base, "getAcks", campId="x" * 5000) == NOT_FOUND
    assert ask(base, "getAcks", campId=provider_ids[PHONES[0]]) == NOT_FOUND
    assert ask(base, "getAcks", campId=" ") == {"status": 0, "statusText": "campId is required"}
    wrong = ask(base, "getAcks", (SHOP[0], "not-the-key-0000000"), campId=campaign)
    assert wrong["status"] == 102
    assert "acks" not in wrong


def test_a_split_messages_acks_are_its_parts_receipts_together(
    redis_server: RedisServer, redis: Redis, store: MessageStore, sandbox: SandboxProvider
) -> None:
    """A split message answers its parts' receipts together; a part's own id is not found."""
    settings = api_settings(redis_server.url, sandbox)
    settings = dataclasses.replace(
        settings, producer=dataclasses.replace(settings.producer, chunk_recipients=2)
    )
    phones = [f"3361234{n:04d}" for n in range(4)]
    with running(create_app(settings, redis)) as base:
        campaign = enqueue(base, SMS=[{"MOBILEPHONE": p} for p in phones])
        record = store.get_by_id(campaign)
        assert record is not None
        parts = record.part_ids
        for part in parts:
            send(redis, sandbox, part)
        provider_ids = store.get_by_id(campaign).sms_ids  # type: ignore[union-attr]
        for status, phone in enumerate(reversed(phones), start=1):
            receipt(base, provider_ids[phone], status)

        whole = ask(base, "getAcks", campId=campaign)
        by_part = ask(base, "getAcks", campId=parts[1])
        last = ask(base, "getAckBySmsId", smsId=f"{campaign}-4")

    assert [(a["phoneNumber"], a["statut"]) for a in whole["acks"]] == [
        (phones[0], "4"),
        (phones[1], "3"),
        (phones[2], "2"),
        (phones[3], "1"),
    ]
    assert by_part == NOT_FOUND
    assert (last["phoneNumber"], last["statut"]) == (phones[3], "1")


@pytest.mark.parametrize("path", ["/http/9.0/{}/", "/http/9.0/{}", "/{}/", "/{}"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_path_and_method_answers_the_same(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore, path: str, method: str
) -> None:
    """GET and POST, with and without the slash, at the long and the short path, answer the same
    JSON."""
    campaign = enqueue(base)

    response = call(base, "getAcks", method=method, path=path, campId=campaign)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=UTF-8"
    assert response.text == '{"acks":[],"cliMsgId":"' + campaign_key(store, campaign) + '"}'


def campaign_key(store: MessageStore, campaign: str) -> str:
    record = store.get_by_id(campaign)
    assert record is not None
    return record.key.removeprefix("gw:shop:")


def test_acks_are_answered_in_xml_when_asked(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """returnformat=xml answers acks as elements, escaped; errors too."""
    campaign, provider_ids = sent(base, redis, sandbox, store)
    receipt(base, provider_ids[PHONES[0]], 1, "<b>Delivered</b> & more")

    acks = call(base, "getAcks", campId=campaign, returnformat="xml")
    one = call(base, "getAckBySmsId", smsId=f"{campaign}-1", returnformat="XML")
    missing = call(base, "getAcks", campId="nope", returnformat="xml")

    assert acks.headers["content-type"] == "text/xml; charset=UTF-8"
    assert acks.text == (
        '<?xml version="1.0" encoding="UTF-8"?><response><acks><ack>'
        f"<phoneNumber>{PHONES[0]}</phoneNumber><statut>1</statut>"
        "<comment>&lt;b&gt;Delivered&lt;/b&gt; &amp; more</comment>"
        "<receptionDate>2026-12-07 10:00:01</receptionDate></ack></acks>"
        "<cliMsgId>order-17</cliMsgId></response>"
    )
    assert one.text == (
        '<?xml version="1.0" encoding="UTF-8"?><response>'
        f"<phoneNumber>{PHONES[0]}</phoneNumber><statut>1</statut>"
        "<comment>&lt;b&gt;Delivered&lt;/b&gt; &amp; more</comment>"
        "<receptionDate>2026-12-07 10:00:01</receptionDate></response>"
    )
    assert missing.text == (
        '<?xml version="1.0" encoding="UTF-8"?><response><status>0</status>'
        "<statusText>Campaign not found</statusText></response>"
    )


def test_acks_are_rate_limited_and_failed_logins_locked_out(
    redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider
) -> None:
    """The login's rate gives 429 with Retry-After; failed logins lock the address out."""
    settings = api_settings(
        redis_server.url,
        sandbox,
        gateway_rate_per_s=0.01,
        gateway_rate_burst=2,
        gateway_login_failures_per_address=2,
    )
    with running(create_app(settings, redis)) as base:
        answers = [call(base, "getAcks", campId="0" * 32) for _ in range(3)]
        failures = [
            call(base, "getAckBySmsId", (BLOG[0], "wrong-key-000000"), smsId="x") for _ in range(3)
        ]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["status"] == 429
    assert int(answers[2].headers["retry-after"]) >= 1
    assert [f.status_code for f in failures] == [200, 200, 429]
    assert [f.json()["status"] for f in failures] == [102, 102, 429]
    assert "too many failed logins from this address" in failures[2].json()["statusText"]


def test_cli_msg_id_is_the_idempotency_key_when_one_was_sent(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """cliMsgId is the Idempotency-Key the message was sent with."""
    reply = post(base + "/http/9.0/sendSms/", json_flux(), headers={"Idempotency-Key": "idem-9"})
    campaign = reply.json()["campaignId"]

    assert ask(base, "getAcks", campId=campaign) == {"acks": [], "cliMsgId": "idem-9"}
    assert ask(base, "getPull", campId=campaign) == {"mos": [], "cliMsgId": "idem-9"}
