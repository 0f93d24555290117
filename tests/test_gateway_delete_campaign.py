"""The gateway's deleteCampaign: an AllMySMS client cancels, with the campaignId the gateway
answered, what it sent through smsq; scoped to its own producer account. Over real sockets,
with the sandbox as AllMySMS for scheduled messages."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.states import State
from producers.store import MessageStore
from tests.helpers.gateway import BLOG, SHOP, answer, gateway_settings, json_flux, post
from tests.helpers.processes import API_KEY, LOGIN
from worker.allmysms.client import AllMySmsClient
from worker.allmysms.flux import PARIS
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.sandbox import SandboxProvider
from worker.send.retries import send_retrying
from worker.send.sender import Sender
from worker.settings import Secret, Settings
from worker.store.audit import AuditLog
from worker.store.control import Switch
from worker.store.ledger import Ledger


TTL_S = 3600
NOT_FOUND = {"status": 0, "statusText": "Campaign not found"}


@pytest.fixture
def base(redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider) -> Iterator[str]:
    """The gateway (AllMySMS = the sandbox) under uvicorn; yields its base URL."""
    settings = dataclasses.replace(
        gateway_settings(redis_server.url),
        base_url=sandbox.base_url,
        login=LOGIN,
        api_key=Secret(API_KEY),
    )
    with running(create_app(settings, redis)) as base_url:
        yield base_url


def enqueue(base: str, **data: Any) -> str:
    """sendSms through the gateway; the campaignId it answers."""
    reply = answer(post(base + "/http/9.0/sendSms/", json_flux(**data)))
    assert reply["status"] in (100, 101)
    campaign: str = reply["campaignId"]
    return campaign


def delete(
    base: str, campaign: str, account: tuple[str, str] = SHOP, **params: str
) -> dict[str, Any]:
    data = {"login": account[0], "apiKey": account[1], "campId": campaign, **params}
    return answer(httpx.post(base + "/http/9.0/deleteCampaign/", data=data, timeout=10))


def send(redis: Redis, sandbox: SandboxProvider, message_id: str) -> None:
    """A worker's send of one message to the sandbox."""
    client = AllMySmsClient(
        base_url=sandbox.base_url, login=LOGIN, api_key=Secret(API_KEY), timeout=httpx.Timeout(5)
    )
    settings = Settings.from_env({"ALLMYSMS_LOGIN": LOGIN, "ALLMYSMS_API_KEY": API_KEY})
    Sender(
        ledger=Ledger(redis, ttl_s=TTL_S, worker_name="w-test"),
        client=client,
        retrying=partial(send_retrying, settings),
        switch=Switch(redis),
    ).send(message_id)
    client.close()


def later() -> str:
    return (datetime.now(PARIS) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")


def test_a_queued_message_is_cancelled_and_answered_ok(
    base: str, redis: Redis, store: MessageStore, sandbox: SandboxProvider
) -> None:
    campaign = enqueue(base)

    done = delete(base, campaign)
    again = delete(base, campaign)

    assert done == {"status": "OK"}
    assert again == {"status": 0, "statusText": "Message is already cancelled"}
    record = store.get_by_id(campaign)
    assert record is not None
    assert record.state is State.CANCELLED
    assert record.history[-1]["by"] == "producer shop"
    assert record.history[-1]["reason"] == (
        "cancelled by producer shop: deleteCampaign through the gateway"
    )
    [entry] = AuditLog(redis, ttl_s=TTL_S).entries(action="cancel")
    assert (entry.actor, entry.targets) == ("producer shop", (record.key,))
    assert sandbox.requests() == []


def test_another_producers_unknown_and_blank_campaigns_are_not_found(
    base: str, store: MessageStore
) -> None:
    campaign = enqueue(base)

    other = delete(base, campaign, account=BLOG)
    unknown = delete(base, "no-such-message")
    huge = delete(base, "x" * 5000)
    blank = delete(base, " ")
    wrong = delete(base, campaign, account=(SHOP[0], "not-the-key-0000000"))

    assert (other, unknown, huge) == (NOT_FOUND, NOT_FOUND, NOT_FOUND)
    assert blank == {"status": 0, "statusText": "campId is required"}
    assert wrong["status"] == 102
    assert store.get_by_id(campaign).state is State.QUEUED  # type: ignore[union-attr]


def test_a_scheduled_message_is_deleted_at_allmysms_first(
    base: str, redis: Redis, store: MessageStore, sandbox: SandboxProvider
) -> None:
    campaign = enqueue(base, DATE=later())
    send(redis, sandbox, campaign)
    record = store.get_by_id(campaign)
    assert record is not None
    assert record.state is State.SCHEDULED
    upstream = record.campaign_id
    assert upstream
    assert upstream != campaign
    sandbox.add_fault({"endpoint": "deleteCampaign", "action": "html502"})

    failed = delete(base, campaign)
    done = delete(base, campaign)

    assert failed == {
        "status": 0,
        "statusText": f"AllMySMS may have deleted campaign {upstream}, its answer is missing "
        "(AllMySMS deleteCampaign answered HTTP 502); it stays scheduled: try again (a "
        "'Campaign not found' then means it was deleted or sent)",
    }
    assert done == {"status": "OK"}
    assert store.get_by_id(campaign).state is State.CANCELLED  # type: ignore[union-attr]
    deletes = [
        (r["campId"], r["status"])
        for r in sandbox.requests()
        if r.get("endpoint") == "deleteCampaign"
    ]
    assert deletes == [(upstream, None), (upstream, "OK")]


def test_sending_and_sent_messages_get_a_clear_error(
    base: str, redis: Redis, store: MessageStore, sandbox: SandboxProvider
) -> None:
    sent = enqueue(base)
    send(redis, sandbox, sent)
    sending = enqueue(base, MESSAGE="other")
    assert Ledger(redis, ttl_s=TTL_S, worker_name="w").claim(sending).outcome == "claimed"

    assert delete(base, sent) == {
        "status": 0,
        "statusText": "Message is sent: AllMySMS accepted it; it cannot be cancelled",
    }
    assert delete(base, sending, returnformat="json") == {
        "status": 0,
        "statusText": "Message is sending: a worker claimed it and may be talking to AllMySMS; "
        "it cannot be cancelled any more",
    }
    assert [store.get_by_id(m).state for m in (sent, sending)] == [State.SENT, State.SENDING]  # type: ignore[union-attr]
    assert redis.exists(keys.message(sent))


def test_delete_campaign_reads_a_get_query_and_answers_xml(base: str, store: MessageStore) -> None:
    campaign = enqueue(base)
    reply = httpx.get(
        base + "/deleteCampaign",
        params={"login": SHOP[0], "apiKey": SHOP[1], "campId": campaign, "returnformat": "xml"},
        timeout=10,
    )
    assert reply.status_code == 200
    assert "<status>OK</status>" in reply.text
    assert store.get_by_id(campaign).state is State.CANCELLED  # type: ignore[union-attr]


def test_a_split_message_answers_ok_only_once_every_part_is_cancelled(
    redis_server: RedisServer, redis: Redis, store: MessageStore, sandbox: SandboxProvider
) -> None:
    base_settings = gateway_settings(redis_server.url)
    settings = dataclasses.replace(
        base_settings,
        producer=dataclasses.replace(base_settings.producer, chunk_recipients=2),
        base_url=sandbox.base_url,
        login=LOGIN,
        api_key=Secret(API_KEY),
    )
    phones = [{"MOBILEPHONE": f"3361234{n:04d}"} for n in range(4)]
    with running(create_app(settings, redis)) as base:
        mixed = enqueue(base, SMS=phones)
        whole = enqueue(base, SMS=phones, MESSAGE="other")
        parts = store.get_by_id(mixed).part_ids  # type: ignore[union-attr]
        send(redis, sandbox, parts[0])

        by_part = delete(base, parts[1])
        partly = delete(base, mixed)
        done = delete(base, whole)

    first, second = (store.get_by_id(p).key for p in parts)  # type: ignore[union-attr]
    assert by_part == NOT_FOUND
    assert partly == {
        "status": 0,
        "statusText": f"cancelled 1 of 2 parts: {second}; not cancelled: {first} (is sent: "
        "AllMySMS accepted it; it cannot be cancelled)",
    }
    assert done == {"status": "OK"}
    assert store.get_by_id(whole).state is State.CANCELLED  # type: ignore[union-attr]
    assert store.get_by_id(mixed).state is State.PARTIAL  # type: ignore[union-attr]
