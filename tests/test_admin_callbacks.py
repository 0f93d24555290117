"""The admin page ``/callbacks``: dead callbacks listed (host only, no number), the ticked ones
sent again with a reason (same event id), audited, CSRF-bound."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from tests.helpers.admin import admin_settings, log_in
from tests.helpers.callbacks import Receiver, deliver_all, finish_sent, settings
from worker.admin import create_app
from worker.admin.server import running
from worker.callbacks.dispatcher import Dispatcher
from worker.callbacks.outbox import dead_callbacks
from worker.dev.redis_server import RedisServer, free_port
from worker.store.audit import AuditLog


@pytest.fixture
def client(redis_server: RedisServer, redis: Redis) -> Iterator[httpx.Client]:
    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port()) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def _notice(page: str) -> str:
    found = re.search(r'<div class="notice [a-z]+" role="[a-z]+">(.*?)</div>', page, re.S)
    assert found, page
    return html.unescape(found.group(1))


def test_dead_callbacks_are_listed_and_the_ticked_ones_sent_again(
    client: httpx.Client, redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    receiver.statuses = [410, 410]
    url = receiver.start() + "?token=s3cr3t"
    finish_sent(redis, producer, "cb-one", callback_url=url)
    finish_sent(redis, producer, "cb-two", callback_url=url)
    assert deliver_all(Dispatcher(settings(), redis)) == ["dead", "dead"]
    dead = {d.event["key"]: d.event_id for d in dead_callbacks(redis)}
    token = log_in(client)

    page = client.get("/callbacks").text
    empty = client.post("/callbacks/requeue", data={"csrf": token, "why": "x"})
    no_reason = client.post("/callbacks/requeue", data={"csrf": token, "event_id": dead["cb-one"]})
    forged = client.post("/callbacks/requeue", data={"csrf": "x", "event_id": dead["cb-one"]})
    done = client.post(
        "/callbacks/requeue",
        data={"csrf": token, "event_id": [dead["cb-one"], "nope"], "why": "receiver fixed"},
    )

    assert page.count('name="event_id"') == 2
    assert "<code>cb-one</code>" in page
    assert "<td>127.0.0.1</td>" in page
    assert "s3cr3t" not in page
    assert empty.status_code == 400
    assert _notice(empty.text) == "Tick the callbacks to send again."
    assert (no_reason.status_code, _notice(no_reason.text)) == (400, "Say why (it is recorded).")
    assert forged.status_code == 403
    assert _notice(done.text) == (
        "Sent again: 1. Not dead any more (requeued, erased or expired): 1."
    )
    assert [d.event["key"] for d in dead_callbacks(redis)] == ["cb-two"]
    assert redis.hexists(keys.CALLBACK_EVENTS, dead["cb-one"])
    [entry] = AuditLog(redis, ttl_s=3600).entries(action="callbacks.requeue")
    assert (entry.actor, entry.why, entry.targets) == (
        "web:ops",
        "receiver fixed",
        (dead["cb-one"],),
    )
