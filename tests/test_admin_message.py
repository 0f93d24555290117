"""One message's admin page: it offers only the actions its state allows (the dead-letter desk's
rules), says in one line why the others are not there, refuses a forged form with that reason,
and pages through a big message's recipients. Real messages: real ``smsq worker`` processes
against the sandbox, the admin app over a real socket."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.store import MessageStore
from tests.helpers.admin import admin_settings, log_in, make_dead_letters
from tests.helpers.processes import Workers
from worker.admin import create_app
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider
from worker.store.ledger import Ledger


IN_PROGRESS = "a worker has it or will take it; nothing to decide yet"
NO_LETTER = "Purge: not offered, this message has no dead letter to forget."
TWICE = "smsq never sends a message twice"


def resolve_line(state: str) -> str:
    return f"Resolve: not offered, only an unknown message is resolved, and this one is {state}."


EXPECTED = {
    "queued-1": (
        [],
        [f"Requeue: not offered, it is queued: {IN_PROGRESS}.", resolve_line("queued"), NO_LETTER],
    ),
    "sending-1": (
        [],
        [
            f"Requeue: not offered, it is sending: {IN_PROGRESS}.",
            resolve_line("sending"),
            NO_LETTER,
        ],
    ),
    "sent-1": (
        [],
        [f"Requeue: not offered, AllMySMS accepted it; {TWICE}.", resolve_line("sent"), NO_LETTER],
    ),
    "partial-1": (
        [],
        [
            f"Requeue: not offered, AllMySMS accepted it for some recipients; {TWICE} (enqueue "
            "a new message with a new key for the others).",
            resolve_line("partial"),
            NO_LETTER,
        ],
    ),
    "scheduled-1": (
        [],
        [
            f"Requeue: not offered, AllMySMS accepted it for a later time; {TWICE}.",
            resolve_line("scheduled"),
            NO_LETTER,
        ],
    ),
    "rejected-1": (["requeue", "purge"], [resolve_line("rejected")]),
    "failed-1": (["requeue", "purge"], [resolve_line("failed")]),
    "unknown-1": (
        ["resolve", "purge"],
        [
            "Requeue: not offered, an unknown message may have been sent; resolve it first (as "
            "not sent, it can then be requeued)."
        ],
    ),
    "expired-1": (
        ["purge"],
        [
            "Requeue: not offered, it expired (its valid_for_s passed); enqueue a new message "
            "with a new key.",
            resolve_line("expired"),
        ],
    ),
}


@pytest.fixture
def client(redis_server: RedisServer, redis: Redis) -> Iterator[httpx.Client]:
    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port()) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def forms(page: str, key: str) -> list[str]:
    """The actions the page has a form for, in page order."""
    return re.findall(rf'<form[^>]* action="/messages/{re.escape(key)}/(\w+)"', page)


def not_offered(page: str) -> list[str]:
    block = page.split('<ul id="not-offered" class="muted">')[1].split("</ul>")[0]
    return [html.unescape(line) for line in re.findall(r"<li>(.*?)</li>", block)]


def make_every_state(
    producer: Producer, sandbox: SandboxProvider, workers: Workers, redis: Redis
) -> None:
    """One message in each of the nine states, each reached the way production reaches it."""
    later = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).isoformat()
    producer.enqueue_many(
        [
            # 0611888888 is on the sandbox's STOP list: AllMySMS takes the other one.
            {"key": "partial-1", "text": "Hi", "to": ["0612345678", "0611888888"]},
            {"key": "scheduled-1", "text": "Hi", "to": ["0612345678"], "send_at": later},
        ]
    )
    make_dead_letters(producer, sandbox, workers)  # rejected-1, unknown-1, expired-1, sent-1
    producer.enqueue({"key": "failed-1", "text": "Hi", "to": ["0612345678"]})
    nobody = f"http://127.0.0.1:{free_port()}/http/9.0"
    assert workers.run_burst(ALLMYSMS_BASE_URL=nobody, SMSQ_SEND_ATTEMPTS="2").returncode == 0
    producer.enqueue_many(
        [
            {"key": "queued-1", "text": "Hi", "to": ["0612345678"]},
            {"key": "sending-1", "text": "Hi", "to": ["0612345678"]},
        ]
    )
    ledger = Ledger(redis, ttl_s=3600, worker_name="w-test")
    assert ledger.claim(keys.message_id("sending-1")).outcome == "claimed"


def test_each_state_shows_only_its_actions_and_says_why_not_the_others(
    client: httpx.Client,
    producer: Producer,
    sandbox: SandboxProvider,
    workers: Workers,
    redis: Redis,
    store: MessageStore,
) -> None:
    make_every_state(producer, sandbox, workers, redis)
    log_in(client)

    pages = {key: client.get(f"/messages/{key}") for key in EXPECTED}

    assert {key: store.get(key).state.value for key in EXPECTED} == {  # type: ignore[union-attr]
        key: key.removesuffix("-1") for key in EXPECTED
    }
    assert {key: page.status_code for key, page in pages.items()} == dict.fromkeys(EXPECTED, 200)
    assert {
        key: (forms(page.text, key), not_offered(page.text)) for key, page in pages.items()
    } == (EXPECTED)


def test_a_forged_requeue_of_an_unknown_message_is_refused_and_changes_nothing(
    client: httpx.Client,
    producer: Producer,
    sandbox: SandboxProvider,
    workers: Workers,
    redis: Redis,
    store: MessageStore,
) -> None:
    """Posted without the page offering it, with or without confirm=1: never a confirmation
    page promising a send, the page's reason instead; state, history and lanes untouched."""
    make_dead_letters(producer, sandbox, workers)
    token = log_in(client)
    before = store.get("unknown-1")
    depth = {lane: redis.llen(f"rq:queue:smsq-{lane}") for lane in ("urgent", "default", "bulk")}

    asked = client.post("/messages/unknown-1/requeue", data={"csrf": token})
    confirmed = client.post("/messages/unknown-1/requeue", data={"csrf": token, "confirm": "1"})
    resolve_rejected = client.post(
        "/messages/rejected-1/resolve",
        data={"csrf": token, "outcome": "sent", "why": "x", "confirm": "1"},
    )
    purge_sent = client.post("/messages/sent-1/purge", data={"csrf": token})

    refusal = (
        '<div class="notice error" role="alert">Refused: an unknown message may have been sent; '
        "resolve it first (as not sent, it can then be requeued)</div>"
    )
    for answer in (asked, confirmed):
        assert answer.status_code == 409
        assert refusal in answer.text
        assert "Requeue this message?" not in answer.text
        assert "a worker will send it" not in answer.text
        assert forms(answer.text, "unknown-1") == ["resolve", "purge"]
    assert resolve_rejected.status_code == 409
    assert (
        "Refused: only an unknown message is resolved, and this one is rejected</div>"
    ) in resolve_rejected.text
    assert purge_sent.status_code == 409
    assert "Refused: this message has no dead letter to forget</div>" in purge_sent.text
    assert store.get("unknown-1") == before
    assert {lane: redis.llen(f"rq:queue:smsq-{lane}") for lane in depth} == depth
    assert [d.key for d in store.dead_letters()].count("unknown-1") == 1
