"""The gateway's getPull, getPullBySmsId and getPulls: replies (MO SMS) to a producer's own
messages, answered from smsq's store in AllMySMS's shape; getPulls "since the last call" per
producer. Over real sockets: the gateway under uvicorn, the sandbox as AllMySMS, replies
posted to the gateway's own webhook."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.store import MessageStore
from tests.helpers.gateway import BLOG, SHOP
from tests.helpers.gateway_api import (
    NOT_FOUND,
    SMS_NOT_FOUND,
    api_settings,
    ask,
    call,
    enqueue,
    reply,
    send,
)
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.sandbox import SandboxProvider
from worker.store.pulls import PULLS_MAX, PULLS_TTL_S, PullQueue
from worker.store.purge import Purger


PHONES = ("33612345678", "33698765432")
BAD_LIMIT = {"status": 0, "statusText": "limit must be a whole number from 1 to 1000"}


@pytest.fixture
def base(redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider) -> Iterator[str]:
    """The gateway (AllMySMS = the sandbox, webhooks on) under uvicorn; yields its base URL."""
    with running(create_app(api_settings(redis_server.url, sandbox), redis)) as base_url:
        yield base_url


def sent(
    base: str,
    redis: Redis,
    sandbox: SandboxProvider,
    store: MessageStore,
    account: tuple[str, str] = SHOP,
    **data: str,
) -> tuple[str, dict[str, str]]:
    """A message to both PHONES sent by a worker: its campaignId and AllMySMS's smsIds."""
    campaign = enqueue(base, account, SMS=[{"MOBILEPHONE": p} for p in PHONES], **data)
    send(redis, sandbox, campaign)
    record = store.get_by_id(campaign)
    assert record is not None
    return campaign, record.sms_ids


def mo(phone: str, mo_id: str, campaign: str, text: str, date: str) -> dict[str, str]:
    return {
        "phoneNumber": phone,
        "id": mo_id,
        "campaignId": campaign,
        "message": text,
        "receptionDate": date,
    }


def test_get_pull_lists_a_messages_replies_oldest_first(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """getPull lists a message's replies oldest first, once per smsMoId; getPullBySmsId only that
    recipient's."""
    campaign, ids = sent(base, redis, sandbox, store, CLIMSGID="rdv-3")
    before = ask(base, "getPull", campId=campaign)
    reply(base, ids[PHONES[1]], "mo-1", "Oui, confirmé", "2026-12-07 11:00:01")
    reply(base, ids[PHONES[0]], "mo-2", "Non merci", "2026-12-07 11:00:02")
    reply(base, ids[PHONES[1]], "mo-3", "À demain", "2026-12-07 11:00:03")
    reply(base, ids[PHONES[1]], "mo-3", "À demain", "2026-12-07 11:00:03")  # replayed

    whole = ask(base, "getPull", campId=campaign)
    second = ask(base, "getPullBySmsId", smsId=f"{campaign}-2")
    first = ask(base, "getPullBySmsId", smsId=f"{campaign}-1")

    assert before == {"mos": [], "cliMsgId": "rdv-3"}
    assert whole == {
        "mos": [
            mo(PHONES[1], "mo-1", campaign, "Oui, confirmé", "2026-12-07 11:00:01"),
            mo(PHONES[0], "mo-2", campaign, "Non merci", "2026-12-07 11:00:02"),
            mo(PHONES[1], "mo-3", campaign, "À demain", "2026-12-07 11:00:03"),
        ],
        "cliMsgId": "rdv-3",
    }
    assert second == {"mos": [whole["mos"][0], whole["mos"][2]], "cliMsgId": "rdv-3"}
    assert first == {"mos": [whole["mos"][1]], "cliMsgId": "rdv-3"}
    assert [r.get("endpoint", "sendSms") for r in sandbox.requests()] == ["sendSms"]


def test_replies_are_scoped_to_the_producer(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """Another producer sees none of the replies; bad and blank ids get their named answer."""
    campaign, ids = sent(base, redis, sandbox, store)
    reply(base, ids[PHONES[0]], "mo-1", "Bonjour")

    assert ask(base, "getPull", BLOG, campId=campaign) == NOT_FOUND
    assert ask(base, "getPullBySmsId", BLOG, smsId=f"{campaign}-1") == SMS_NOT_FOUND
    assert ask(base, "getPulls", BLOG) == {"mos": []}
    assert ask(base, "getPull", campId="0" * 32) == NOT_FOUND
    assert ask(base, "getPull", campId="x" * 5000) == NOT_FOUND
    assert ask(base, "getPull", campId="") == {"status": 0, "statusText": "campId is required"}
    assert ask(base, "getPullBySmsId", smsId=f"{campaign}-9") == SMS_NOT_FOUND
    assert ask(base, "getPullBySmsId", smsId="") == {
        "status": 0,
        "statusText": "smsId is required",
    }
    assert ask(base, "getPulls")["mos"] == [
        mo(PHONES[0], "mo-1", campaign, "Bonjour", "2026-12-07 11:00:00")
    ]


def test_get_pulls_returns_each_reply_once_per_producer_oldest_first(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """getPulls returns each reply once, oldest first, at most limit, per producer."""
    one, ids_one = sent(base, redis, sandbox, store)
    two, ids_two = sent(base, redis, sandbox, store, MESSAGE="second")
    blog, ids_blog = sent(base, redis, sandbox, store, account=BLOG, MESSAGE="blog")
    reply(base, ids_one[PHONES[0]], "mo-a", "a", "2026-12-07 11:00:01")
    reply(base, ids_blog[PHONES[0]], "mo-b", "b", "2026-12-07 11:00:02")
    reply(base, ids_two[PHONES[1]], "mo-c", "c", "2026-12-07 11:00:03")
    reply(base, ids_one[PHONES[1]], "mo-d", "d", "2026-12-07 11:00:04")
    reply(base, ids_one[PHONES[0]], "mo-a", "a", "2026-12-07 11:00:01")  # replayed: once

    first = ask(base, "getPulls", limit="2")
    rest = ask(base, "getPulls")
    after = ask(base, "getPulls", limit="1000")
    blogs = ask(base, "getPulls", BLOG, limit=" 5 ")
    reply(base, ids_two[PHONES[0]], "mo-e", "e", "2026-12-07 11:00:05")
    new = ask(base, "getPulls")

    assert first == {
        "mos": [
            mo(PHONES[0], "mo-a", one, "a", "2026-12-07 11:00:01"),
            mo(PHONES[1], "mo-c", two, "c", "2026-12-07 11:00:03"),
        ]
    }
    assert rest == {"mos": [mo(PHONES[1], "mo-d", one, "d", "2026-12-07 11:00:04")]}
    assert after == {"mos": []}
    assert blogs == {"mos": [mo(PHONES[0], "mo-b", blog, "b", "2026-12-07 11:00:02")]}
    assert new == {"mos": [mo(PHONES[0], "mo-e", two, "e", "2026-12-07 11:00:05")]}
    # getPull still answers what getPulls returned.
    assert len(ask(base, "getPull", campId=one)["mos"]) == 2


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "1.5", "abc", "١٢", "9" * 50])
def test_a_bad_limit_is_refused_and_takes_nothing(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore, limit: str
) -> None:
    """A limit that is not a whole number from 1 to 1000 is refused and takes nothing."""
    _, ids = sent(base, redis, sandbox, store)
    reply(base, ids[PHONES[0]], "mo-1", "Bonjour")

    assert ask(base, "getPulls", limit=limit) == BAD_LIMIT
    assert PullQueue(redis).pending("shop") == 1


def test_a_reply_to_a_split_message_is_pulled_under_the_campaign_the_producer_knows(
    redis_server: RedisServer, redis: Redis, store: MessageStore, sandbox: SandboxProvider
) -> None:
    """A reply to a part is answered under the split message's campaignId."""
    settings = api_settings(redis_server.url, sandbox)
    settings = dataclasses.replace(
        settings, producer=dataclasses.replace(settings.producer, chunk_recipients=1)
    )
    with running(create_app(settings, redis)) as base:
        campaign = enqueue(base, SMS=[{"MOBILEPHONE": p} for p in PHONES])
        parts = store.get_by_id(campaign).part_ids  # type: ignore[union-attr]
        for part in parts:
            send(redis, sandbox, part)
        ids = store.get_by_id(campaign).sms_ids  # type: ignore[union-attr]
        reply(base, ids[PHONES[1]], "mo-1", "Merci")

        pulls = ask(base, "getPulls")
        whole = ask(base, "getPull", campId=campaign)
        by_part = ask(base, "getPull", campId=parts[1])
        by_sms = ask(base, "getPullBySmsId", smsId=f"{campaign}-2")

    expected = mo(PHONES[1], "mo-1", campaign, "Merci", "2026-12-07 11:00:00")
    assert pulls == {"mos": [expected]}
    assert whole["mos"] == [expected]
    assert by_part == NOT_FOUND
    assert by_sms["mos"] == [expected]


def test_a_purged_persons_replies_are_no_longer_pulled(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """The list holds references only, and a purged person's reply is skipped."""
    campaign, ids = sent(base, redis, sandbox, store)
    reply(base, ids[PHONES[0]], "mo-1", "Effacez-moi")
    reply(base, ids[PHONES[1]], "mo-2", "Bonjour")
    # The list holds references only: no number, no text.
    assert redis.lrange(keys.gateway_pulls("shop"), 0, -1) == [
        f"{campaign} mo-1".encode(),
        f"{campaign} mo-2".encode(),
    ]

    Purger(redis, default_region="FR").purge(PHONES[0], actor="test")

    assert ask(base, "getPulls") == {
        "mos": [mo(PHONES[1], "mo-2", campaign, "Bonjour", "2026-12-07 11:00:00")]
    }
    assert ask(base, "getPull", campId=campaign)["mos"] == [
        mo(PHONES[1], "mo-2", campaign, "Bonjour", "2026-12-07 11:00:00")
    ]
    assert redis.exists(keys.gateway_pulls("shop")) == 0


def test_the_pull_list_holds_references_only_and_is_bounded(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """The list keeps the newest PULLS_MAX, expires after PULLS_TTL_S, and unknown references are
    skipped."""
    campaign, ids = sent(base, redis, sandbox, store)
    name = keys.gateway_pulls("shop")
    redis.rpush(name, *[f"{'0' * 32} old-{n}" for n in range(PULLS_MAX)])

    reply(base, ids[PHONES[0]], "mo-new", "Texte privé")

    assert redis.llen(name) == PULLS_MAX
    assert redis.lindex(name, 0) == f"{'0' * 32} old-1".encode()
    assert redis.lindex(name, -1) == f"{campaign} mo-new".encode()
    assert PULLS_TTL_S - 5 <= redis.ttl(name) <= PULLS_TTL_S
    # The old references name no message of shop's: skipped; the new reply comes last.
    skipped = [ask(base, "getPulls")["mos"] for _ in range(PULLS_MAX // 1000 - 1)]
    assert skipped == [[]] * (PULLS_MAX // 1000 - 1)
    assert ask(base, "getPulls")["mos"] == [
        mo(PHONES[0], "mo-new", campaign, "Texte privé", "2026-12-07 11:00:00")
    ]
    assert redis.exists(name) == 0


def test_a_reply_to_a_message_not_from_the_gateway_is_pulled_by_nobody(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore, producer: Producer
) -> None:
    """A reply to a message enqueued outside the gateway is stored but queued for no producer."""
    enqueued = producer.enqueue({"key": "lib-1", "text": "Bonjour", "to": [PHONES[0]]})
    send(redis, sandbox, enqueued.message_id)
    record = store.get_by_id(enqueued.message_id)
    assert record is not None

    reply(base, record.sms_ids[PHONES[0]], "mo-1", "Bonjour")

    assert store.get_by_id(enqueued.message_id).replies[0]["sms_mo_id"] == "mo-1"  # type: ignore[union-attr]
    assert redis.keys(keys.gateway_pulls("*")) == []
    assert ask(base, "getPulls") == {"mos": []}


def test_replies_are_answered_in_xml_without_characters_xml_cannot_carry(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """XML answers replace characters XML cannot carry and escape markup."""
    campaign, ids = sent(base, redis, sandbox, store)
    reply(base, ids[PHONES[0]], "mo-1", "a\x01b <c> & d")

    pulled = call(base, "getPulls", method="GET", path="/{}", returnformat="xml")

    assert pulled.status_code == 200
    assert pulled.headers["content-type"] == "text/xml; charset=UTF-8"
    assert pulled.text == (
        '<?xml version="1.0" encoding="UTF-8"?><response><mos><mo>'
        f"<phoneNumber>{PHONES[0]}</phoneNumber><id>mo-1</id><campaignId>{campaign}</campaignId>"
        "<message>a\ufffdb &lt;c&gt; &amp; d</message>"
        "<receptionDate>2026-12-07 11:00:00</receptionDate></mo></mos></response>"
    )


def test_logs_hold_no_key_text_or_phone(
    base: str,
    redis: Redis,
    sandbox: SandboxProvider,
    store: MessageStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The read routes log their events without the key, the reply's text or a full number."""
    from worker.logs import configure_logging

    campaign, ids = sent(base, redis, sandbox, store)
    configure_logging(fmt="json", secrets=[SHOP[1]])
    reply(base, ids[PHONES[0]], "mo-1", "mon texte privé 4242")
    ask(base, "getPull", campId=campaign)
    ask(base, "getPullBySmsId", smsId=f"{campaign}-1")
    ask(base, "getPulls")
    ask(base, "getAcks", campId=campaign)
    ask(base, "getAckBySmsId", smsId=f"{campaign}-1")

    err = capsys.readouterr().err
    events = {json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")}
    wanted = {"gateway.get_pull", "gateway.get_pulls", "gateway.get_acks", "gateway.get_ack"}
    assert wanted <= events
    for leak in (SHOP[1], "mon texte privé", *PHONES):
        assert leak not in err
