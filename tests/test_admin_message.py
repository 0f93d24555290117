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
from hypothesis import given
from hypothesis import strategies as st
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.errors import InvalidInputError
from producers.states import State
from producers.store import MessageStore
from tests.helpers.admin import admin_settings, log_in, make_dead_letters
from tests.helpers.processes import Workers
from worker.admin import create_app
from worker.admin.recipients import parse_page
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider
from worker.store.control import Switch
from worker.store.ledger import Ledger


IN_PROGRESS = "a worker has it or will take it; nothing to decide yet"
NO_LETTER = "Purge: not offered, this message has no dead letter to forget."
TWICE = "smsq never sends a message twice"
EN_DASH = "\u2013"


def resolve_line(state: str) -> str:
    return f"Resolve: not offered, only an unknown message is resolved, and this one is {state}."


EXPECTED = {
    "queued-1": (
        ["cancel"],
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
        ["cancel"],
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


def recipient_rows(page: str) -> list[list[str]]:
    """The cells of each row of the recipients table (tags stripped, unescaped)."""
    body = page.split('<table id="recipients">')[1].split("</table>")[0].split("<tbody>")[1]
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell))
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body)
    ]


def page_links(page: str) -> dict[str, str]:
    nav = page.split('<nav id="recipient-pages">')[1].split("</nav>")[0]
    return {
        rel: html.unescape(href) for rel, href in re.findall(r'rel="(\w+)" href="([^"]+)"', nav)
    }


def range_text(page: str) -> str:
    match = re.search(r'<p id="recipient-range">(.*?)</p>', page)
    assert match, page
    return match.group(1)


@pytest.fixture
def split_message(
    producer: Producer, sandbox: SandboxProvider, workers: Workers, store: MessageStore
) -> list[str]:
    """ "big": 1,200 recipients sent in parts of 500; AllMySMS refuses the second part (106)."""
    phones = [f"336{n:08d}" for n in range(20_000_000, 20_001_200)]
    assert producer.enqueue({"key": "big", "text": "Hi", "to": phones}).parts == 3
    sandbox.add_fault({"action": "status", "status": 106, "match": {"phone": phones[700]}})
    assert workers.run_burst().returncode == 0
    record = store.get("big")
    assert record is not None
    assert (record.state, len(record.sms_ids)) == (State.PARTIAL, 700)
    return phones


def test_a_big_message_pages_its_recipients_and_keeps_the_whole_summary(
    client: httpx.Client, split_message: list[str], store: MessageStore
) -> None:
    phones = split_message
    record = store.get("big")
    assert record is not None
    log_in(client)

    first = client.get("/messages/big").text
    second = client.get("/messages/big?page=2").text
    sixth = client.get("/messages/big?page=6").text
    last = client.get("/messages/big?page=12").text

    rows = recipient_rows(first)
    assert len(rows) == 100
    sms_id = record.sms_ids[phones[0]]
    assert rows[0] == ["1", phones[0], "accepted by AllMySMS", sms_id, "", "big#1/3"]
    assert [r[0] for r in rows] == [str(n) for n in range(1, 101)]
    assert range_text(first) == f"Recipients 1{EN_DASH}100 of 1,200"
    assert page_links(first) == {"next": "/messages/big?page=2"}
    assert [r[0] for r in recipient_rows(second)] == [str(n) for n in range(101, 201)]
    assert range_text(second) == f"Recipients 101{EN_DASH}200 of 1,200"
    assert page_links(second) == {"prev": "/messages/big?page=1", "next": "/messages/big?page=3"}
    assert "· page 2 of 12 ·" in second
    assert {(r[2], r[3], r[5]) for r in recipient_rows(sixth)} == {("rejected", "", "big#2/3")}
    assert [r[1] for r in recipient_rows(sixth)] == phones[500:600]
    assert len(recipient_rows(last)) == 100
    assert range_text(last) == f"Recipients 1,101{EN_DASH}1,200 of 1,200"
    assert page_links(last) == {"prev": "/messages/big?page=11"}
    for page in (first, second, sixth, last):
        # The summary is the whole message's, whatever the page.
        assert '<dd id="accepted">700</dd>' in page
        assert '<dd id="delivery">0 delivered, 0 failed, 700 pending</dd>' in page
        assert "<dt>Recipients</dt><dd>1,200 (1 SMS part(s) each, gsm7)</dd>" in page
        assert '"to": "1,200 recipient(s), listed under Recipients"' in html.unescape(page)
        assert page.count(phones[1150]) == (1 if page is last else 0)


def test_bad_page_numbers_get_a_400_naming_page(
    client: httpx.Client, split_message: list[str]
) -> None:
    log_in(client)
    bad = ["0", "-1", "abc", "", "1.5", "²", "13", str(10**30), "9" * 5000]

    answers = {value: client.get("/messages/big", params={"page": value}) for value in bad}

    notice = (
        '<div class="notice error" role="alert">page: must be a whole number from 1 to 12 '
        "(100 recipients a page)</div>"
    )
    assert {v: a.status_code for v, a in answers.items()} == dict.fromkeys(bad, 400)
    for answer in answers.values():
        assert notice in answer.text
        assert range_text(answer.text) == f"Recipients 1{EN_DASH}100 of 1,200"
        assert "Traceback" not in answer.text


def test_a_split_message_links_its_parts_and_each_part_its_parent(
    client: httpx.Client, split_message: list[str]
) -> None:
    """Parent: the parts table, and Requeue (of its rejected part); resolve and purge are per
    part. Part 2, rejected: its parent, and Requeue and Purge."""
    log_in(client)

    parent = client.get("/messages/big").text
    part = client.get("/messages/big%232%2F3").text

    parts = parent.split('<table id="parts">')[1].split("</table>")[0]
    assert re.findall(r'<a href="([^"]+)">([^<]+)</a></td><td>(\w+)</td>', parts) == [
        ("/messages/big%231%2F3", "big#1/3", "sent"),
        ("/messages/big%232%2F3", "big#2/3", "rejected"),
        ("/messages/big%233%2F3", "big#3/3", "sent"),
    ]
    page = "on its own page (Parts, below)"
    assert forms(parent, "big") == ["requeue"]
    assert not_offered(parent) == [
        f"Resolve: not offered, this message is split into 3 parts; an unknown part is resolved "
        f"{page}.",
        f"Purge: not offered, this message is split into 3 parts; a part's dead letter is purged "
        f"{page}.",
    ]
    assert '<p id="parent">Part of message <a href="/messages/big">big</a>.</p>' in part
    assert forms(part, "big%232%2F3") == ["requeue", "purge"]
    assert range_text(part) == f"Recipients 1{EN_DASH}100 of 500"


def test_page_links_of_a_key_that_travels_in_the_query_string(
    client: httpx.Client, producer: Producer
) -> None:
    producer.enqueue(
        {"key": "..", "text": "Hi", "to": [f"336{n:08d}" for n in range(20_000_000, 20_000_150)]}
    )
    log_in(client)

    page = client.get("/messages/?key=..&page=2").text

    assert range_text(page) == f"Recipients 101{EN_DASH}150 of 150"
    assert page_links(page) == {"prev": "/messages/?key=..&page=1"}
    assert len(recipient_rows(page)) == 50


@given(
    text=st.one_of(st.text(max_size=40), st.integers(-5, 20_000).map(str)),
    pages=st.integers(min_value=1, max_value=10_000),
)
def test_any_page_value_is_a_page_or_an_error_naming_page(text: str, pages: int) -> None:
    """Whatever ``?page=`` holds: a page from 1 to ``pages``, or an error naming ``page``."""
    value = text.strip()
    if re.fullmatch(r"[0-9]{1,9}", value) and 1 <= int(value) <= pages:
        assert parse_page(text, pages) == int(value)
        return
    with pytest.raises(InvalidInputError) as raised:
        parse_page(text, pages)
    span = "1" if pages == 1 else f"1 to {pages:,}"
    assert (raised.value.field, raised.value.reason) == (
        "page",
        f"must be a whole number from {span} (100 recipients a page)",
    )


def test_requeueing_a_split_message_asks_with_the_plan_then_requeues_its_rejected_part(
    client: httpx.Client, split_message: list[str], store: MessageStore
) -> None:
    token = log_in(client)

    asked = client.post("/messages/big/requeue", data={"csrf": token})
    done = client.post("/messages/big/requeue", data={"csrf": token, "confirm": "1"})

    left = "left as they are: big#1/3 (sent), big#3/3 (sent)"
    assert asked.status_code == 200
    assert (
        html.unescape(asked.text).count(
            "Message 'big' is partial. Requeueing puts each of its parts AllMySMS provably did not "
            "send back in lane default as a new job, and a worker sends them at its next pass: "
            f"would requeue 1 of 3 parts: big#2/3; {left}."
        )
        == 1
    )
    assert done.status_code == 200
    assert (
        f'<div class="notice ok" role="status">Requeued: requeued 1 of 3 parts: big#2/3; {left}'
    ) in html.unescape(done.text)
    assert [p["state"] for p in store.get("big").parts] == ["sent", "queued", "sent"]  # type: ignore[union-attr]


def test_the_requeue_confirmation_says_when_a_paused_lane_will_send(
    client: httpx.Client,
    producer: Producer,
    sandbox: SandboxProvider,
    workers: Workers,
    redis: Redis,
) -> None:
    """It promises what happens: with its lane paused, the send waits for the resume."""
    make_dead_letters(producer, sandbox, workers)
    token = log_in(client)

    running = client.post("/messages/rejected-1/requeue", data={"csrf": token})
    Switch(redis).pause("*", reason="provider incident", by="ops")
    paused = client.post("/messages/rejected-1/requeue", data={"csrf": token})

    start = "Message 'rejected-1' is rejected. Requeueing puts it back in lane default as a new job"
    assert f"{start}, and a worker sends it at its next pass." in html.unescape(running.text)
    assert (
        f"{start}, and a worker sends it once lane default is resumed (paused: provider incident)."
    ) in html.unescape(paused.text)
