"""The admin page's Cancel button: a queued message ends cancelled, a scheduled one is deleted
at AllMySMS first (the sandbox, over real sockets); a reason is required, the action asks
"are you sure?" first, carries the CSRF token, and is in the audit stream."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.admin import admin_settings, log_in
from tests.helpers.processes import API_KEY, LOGIN
from worker.admin import create_app
from worker.admin.server import running
from worker.allmysms.client import AllMySmsClient
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider
from worker.send.retries import send_retrying
from worker.send.sender import Sender
from worker.settings import Secret, Settings
from worker.store.audit import AuditLog
from worker.store.control import Switch
from worker.store.ledger import Ledger


TTL_S = 3600


@pytest.fixture
def client(
    redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider
) -> Iterator[httpx.Client]:
    settings = dataclasses.replace(admin_settings(redis_server.url), base_url=sandbox.base_url)
    app = create_app(settings, redis)
    with running(app, port=free_port()) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def enqueue(redis: Redis, key: str, **fields: object) -> None:
    Producer(redis, ProducerSettings()).enqueue(
        {"key": key, "text": "Hi", "to": ["0612345678"], **fields}
    )


def send(redis: Redis, sandbox: SandboxProvider, key: str) -> None:
    allmysms = AllMySmsClient(
        base_url=sandbox.base_url, login=LOGIN, api_key=Secret(API_KEY), timeout=httpx.Timeout(5)
    )
    settings = Settings.from_env({"ALLMYSMS_LOGIN": LOGIN, "ALLMYSMS_API_KEY": API_KEY})
    Sender(
        ledger=Ledger(redis, ttl_s=TTL_S, worker_name="w-test"),
        client=allmysms,
        retrying=partial(send_retrying, settings),
        switch=Switch(redis),
    ).send(keys.message_id(key))
    allmysms.close()


def notice(page: str) -> str:
    found = re.search(r'<div class="notice[^"]*" role="[^"]+">(.*?)</div>', page)
    assert found, page
    return html.unescape(found.group(1))


def question(page: str) -> str:
    found = re.search(r'<p class="question">(.*?)</p>', page)
    assert found, page
    return html.unescape(found.group(1))


def test_a_queued_message_is_cancelled_after_a_reason_and_a_confirmation(
    client: httpx.Client, redis: Redis, store: MessageStore, sandbox: SandboxProvider
) -> None:
    enqueue(redis, "q-1")
    token = log_in(client)
    page = client.get("/messages/q-1")

    forged = client.post("/messages/q-1/cancel", data={"why": "typo", "confirm": "1"})
    blank = client.post("/messages/q-1/cancel", data={"csrf": token, "why": " "})
    asked = client.post("/messages/q-1/cancel", data={"csrf": token, "why": "typo"})
    assert store.get("q-1").state is State.QUEUED  # type: ignore[union-attr]
    done = client.post("/messages/q-1/cancel", data={"csrf": token, "why": "typo", "confirm": "1"})
    again = client.post("/messages/q-1/cancel", data={"csrf": token, "why": "typo", "confirm": "1"})

    assert 'action="/messages/q-1/cancel"' in page.text
    assert 'name="why"' in page.text
    assert forged.status_code == 403
    assert (blank.status_code, notice(blank.text)) == (
        400,
        "Say why you cancel it (it is recorded).",
    )
    assert asked.status_code == 200
    assert question(asked.text) == (
        "Message 'q-1' is queued: would be cancelled (it is queued). It is never sent. "
        "Because: typo"
    )
    assert '<input type="hidden" name="why" value="typo">' in asked.text
    assert (done.status_code, notice(done.text)) == (200, "Cancelled: cancelled by web:ops: typo")
    assert (again.status_code, notice(again.text)) == (409, "Refused: is already cancelled")
    assert 'action="/messages/q-1/cancel"' not in done.text
    record = store.get("q-1")
    assert record is not None
    assert record.state is State.CANCELLED
    assert (record.history[-1]["by"], record.history[-1]["reason"]) == (
        "web:ops",
        "cancelled by web:ops: typo",
    )
    [entry] = AuditLog(redis, ttl_s=TTL_S).entries(action="cancel")
    assert (entry.actor, entry.why, entry.targets) == ("web:ops", "typo", ("q-1",))
    assert sandbox.requests() == []


def test_a_scheduled_message_is_deleted_at_allmysms_and_a_refusal_says_why(
    client: httpx.Client, redis: Redis, store: MessageStore, sandbox: SandboxProvider
) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    enqueue(redis, "s-1", send_at=later)
    send(redis, sandbox, "s-1")
    campaign = store.get("s-1").campaign_id  # type: ignore[union-attr]
    token = log_in(client)
    sandbox.add_fault({"endpoint": "deleteCampaign", "action": "status", "status": 105})
    form = {"csrf": token, "why": "event moved"}

    page = client.get("/messages/s-1")
    asked = client.post("/messages/s-1/cancel", data=form)
    refused = client.post("/messages/s-1/cancel", data={**form, "confirm": "1"})
    done = client.post("/messages/s-1/cancel", data={**form, "confirm": "1"})

    assert "AllMySMS deletes its campaign first (deleteCampaign)" in page.text
    assert question(asked.text) == (
        f"Message 's-1' is scheduled: would delete AllMySMS campaign {campaign} (it is "
        "scheduled), then cancel it. It is never sent. Because: event moved"
    )
    assert (refused.status_code, notice(refused.text)) == (
        409,
        f"Refused: AllMySMS refused to delete campaign {campaign}: Flux XML Vide; it stays "
        "scheduled",
    )
    assert (done.status_code, notice(done.text)) == (
        200,
        "Cancelled: cancelled by web:ops: event moved (deleteCampaign OK)",
    )
    assert store.get("s-1").state is State.CANCELLED  # type: ignore[union-attr]
    assert [
        (r["campId"], r["status"])
        for r in sandbox.requests()
        if r.get("endpoint") == "deleteCampaign"
    ] == [(campaign, 105), (campaign, "OK")]


def test_a_sent_message_has_no_cancel_button_and_a_forged_post_is_refused(
    client: httpx.Client, redis: Redis, store: MessageStore, sandbox: SandboxProvider
) -> None:
    enqueue(redis, "sent-1")
    send(redis, sandbox, "sent-1")
    token = log_in(client)

    page = client.get("/messages/sent-1")
    forged = client.post(
        "/messages/sent-1/cancel", data={"csrf": token, "why": "x", "confirm": "1"}
    )

    assert 'action="/messages/sent-1/cancel"' not in page.text
    assert (forged.status_code, notice(forged.text)) == (
        409,
        "Refused: is sent: AllMySMS accepted it; it cannot be cancelled",
    )
    assert store.get("sent-1").state is State.SENT  # type: ignore[union-attr]
    assert AuditLog(redis, ttl_s=TTL_S).entries(action="cancel") == []
