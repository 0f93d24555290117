"""The gateway's smsqStatus: a producer reads its own message's record over HTTP, by its key,
its campaignId or one smsId, and never another producer's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from redis import Redis

from producers.store import MessageStore
from tests.helpers.gateway import BLOG, SHOP
from tests.helpers.gateway_api import api_settings, ask, call, enqueue, send
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.sandbox import SandboxProvider


NOT_FOUND = {"status": 0, "statusText": "Message not found"}
PHONES = ["33612345678", "33698765432"]


@pytest.fixture
def base(redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider) -> Iterator[str]:
    with running(create_app(api_settings(redis_server.url, sandbox), redis)) as base_url:
        yield base_url


def test_a_producer_reads_its_message_by_key_campaign_and_sms_id(
    base: str, redis: Redis, sandbox: SandboxProvider, store: MessageStore
) -> None:
    campaign = enqueue(base, CLIMSGID="order-17", SMS=[{"MOBILEPHONE": p} for p in PHONES])
    queued = ask(base, "smsqStatus", key="order-17")
    send(redis, sandbox, campaign)
    record = store.get_by_id(campaign)
    assert record is not None

    by_key = ask(base, "smsqStatus", key="order-17")
    by_campaign = ask(base, "smsqStatus", campId=campaign)
    by_sms_id = ask(base, "smsqStatus", smsId=f"{campaign}-2")
    as_xml = call(base, "smsqStatus", campId=campaign, returnformat="xml")

    assert (queued["state"], queued["key"]) == ("queued", "gw:shop:order-17")
    assert by_key == by_campaign == record.as_dict()
    assert by_key["state"] == "sent"
    assert by_sms_id["recipient"] == {
        "position": 2,
        "phone": PHONES[1],
        "provider_sms_id": record.sms_ids[PHONES[1]],
    }
    assert json.loads(as_xml.text)["state"] == "sent"  # always JSON


def test_another_producers_message_is_not_found_and_bad_asks_say_why(
    base: str, redis: Redis, sandbox: SandboxProvider
) -> None:
    campaign = enqueue(base, CLIMSGID="order-18")

    assert ask(base, "smsqStatus", BLOG, key="order-18") == NOT_FOUND
    assert ask(base, "smsqStatus", BLOG, campId=campaign) == NOT_FOUND
    assert ask(base, "smsqStatus", BLOG, smsId=f"{campaign}-1") == NOT_FOUND
    assert ask(base, "smsqStatus", SHOP, key="no-such") == NOT_FOUND
    assert ask(base, "smsqStatus", SHOP, smsId=f"{campaign}-9") == NOT_FOUND
    assert ask(base, "smsqStatus", SHOP, key="k" * 300) == NOT_FOUND
    assert ask(base, "smsqStatus", SHOP)["statusText"] == (
        "Name the message: key, campId or smsId (one of them)"
    )
    assert ask(base, "smsqStatus", SHOP, key="order-18", campId=campaign)["status"] == 0
    assert (
        ask(base, "smsqStatus", (SHOP[0], "wrong-key-0123456789"), key="order-18")["status"] == 102
    )
