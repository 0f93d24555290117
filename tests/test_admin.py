"""The operators' web page over real sockets: a uvicorn server in a thread, httpx as the client,
dead letters made by real ``smsq worker`` processes against the sandbox."""

from __future__ import annotations

import dataclasses
import hashlib
import html
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from markupsafe import escape
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.admin import (
    PASSWORD,
    SESSION_SECRET,
    USER,
    admin_settings,
    csrf_of,
    log_in,
    make_dead_letters,
)
from tests.helpers.processes import API_KEY, ROOT, Workers
from worker.admin import create_app, sessions
from worker.admin.rendering import message_url
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider
from worker.send.intake import Intake
from worker.settings import Secret, Settings
from worker.store.control import Pause, Switch
from worker.store.deadletters import DeadLetterDesk
from worker.store.ledger import Ledger


ODD_KEY = "commande 42/été ?#&x=1 %2F"
"""A key with a slash, spaces, accents, URL syntax and a literal percent escape."""


@pytest.fixture
def admin(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    """The admin app served by uvicorn on a free loopback port; yields its base URL."""
    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port()) as base_url:
        yield base_url


@pytest.fixture
def client(admin: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin, timeout=10) as http:
        yield http


@pytest.fixture
def dead(
    producer: Producer, sandbox: SandboxProvider, workers: Workers, store: MessageStore
) -> None:
    """Real dead letters: rejected-1 (114), unknown-1 (502), expired-1; and sent-1."""
    make_dead_letters(producer, sandbox, workers)
    states = {
        key: record.state
        for key in ("rejected-1", "unknown-1", "expired-1", "sent-1")
        if (record := store.get(key))
    }
    assert states == {
        "rejected-1": State.REJECTED,
        "unknown-1": State.UNKNOWN,
        "expired-1": State.EXPIRED,
        "sent-1": State.SENT,
    }


def announce_body(base_url: str, path: str, length: int) -> bytes:
    """POST headers announcing ``length`` bytes, send none, and return the start of the answer.

    A raw socket, because a client still sending a refused body gets its connection reset.
    """
    url = httpx.URL(base_url)
    with socket.create_connection((url.host, url.port or 80), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {url.host}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        return sock.recv(4096)


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header of ``response`` by cookie name."""
    return {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}


def dead_keys(html: str) -> list[str]:
    """Message keys linked from the dead-letters table, in page order."""
    return re.findall(r'<a href="/messages/[^"]*">([^<]*)</a>', html)


def test_pages_redirect_to_login_but_probes_do_not(client: httpx.Client) -> None:
    """Every page sends an anonymous visitor to /login (keeping where it was going)."""
    for path, target in (
        ("/", "/login?next=%2F"),
        ("/dead?status=114", "/login?next=%2Fdead%3Fstatus%3D114"),
        ("/messages/a", "/login?next=%2Fmessages%2Fa"),
    ):
        answer = client.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, target)
    for path in ("/pause", "/resume", "/messages/a/requeue", "/messages/a/resolve"):
        answer = client.post(path, data={"lane": "all"})
        assert (answer.status_code, answer.headers["location"].split("?")[0]) == (303, "/login")
    assert client.get("/metrics").status_code == 200
    assert client.get("/healthz").json() == {"ok": True}


def test_login_then_next_page_then_logout(client: httpx.Client) -> None:
    """A good login sets a strict, HttpOnly 8-hour cookie and goes to ``next``; logout ends it."""
    token = csrf_of(client.get("/login?next=/dead").text)

    answer = client.post(
        "/login", data={"csrf": token, "user": USER, "password": PASSWORD, "next": "/dead"}
    )

    assert (answer.status_code, answer.headers["location"]) == (303, "/dead")
    [cookie] = [c for c in answer.headers.get_list("set-cookie") if c.startswith("smsq_admin=")]
    assert "Max-Age=28800" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    page = client.get("/dead")
    assert page.status_code == 200
    assert "<h1>Dead letters</h1>" in page.text
    logout = client.post("/logout", data={"csrf": csrf_of(page.text)})
    assert (logout.status_code, logout.headers["location"]) == (303, "/login")
    assert client.get("/").status_code == 303


def test_next_never_leads_off_the_site(client: httpx.Client) -> None:
    """A ``next`` pointing elsewhere is replaced by the overview."""
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"csrf": token, "user": USER, "password": PASSWORD, "next": "//evil.example/x"},
    )
    assert answer.headers["location"] == "/"


def test_wrong_credentials_are_401_then_429_after_five(admin: str, client: httpx.Client) -> None:
    """Five failures answer 401 without naming the wrong field; the sixth try is 429."""
    token = csrf_of(client.get("/login").text)
    tries = [("nobody", PASSWORD), (USER, "wrong"), (USER, ""), ("", ""), (USER, PASSWORD + "x")]

    answers = [
        client.post("/login", data={"csrf": token, "user": u, "password": p}) for u, p in tries
    ]
    blocked = client.post("/login", data={"csrf": token, "user": USER, "password": PASSWORD})

    assert [a.status_code for a in answers] == [401] * 5
    assert all("Wrong user name or password." in a.text for a in answers)
    assert len({a.text.replace(token, "") for a in answers}) == 1
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert "Too many failed logins" in blocked.text
    # Another client address is not locked out.
    with httpx.Client(
        base_url=admin, timeout=10, transport=httpx.HTTPTransport(local_address="127.0.0.2")
    ) as other:
        assert log_in(other)


def test_posts_without_the_sessions_csrf_token_are_forbidden(
    client: httpx.Client, redis: Redis
) -> None:
    """A missing or foreign CSRF token is 403 and changes nothing, login form included."""
    token = log_in(client)
    with httpx.Client(base_url=client.base_url, timeout=10) as stranger:
        foreign = csrf_of(stranger.get("/login").text)

    missing = client.post("/pause", data={"lane": "all", "confirm": "1"})
    wrong = client.post("/pause", data={"lane": "all", "confirm": "1", "csrf": foreign})
    logout = client.post("/logout", data={})
    login = httpx.post(f"{client.base_url}/login", data={"user": USER, "password": PASSWORD})

    assert [missing.status_code, wrong.status_code, logout.status_code, login.status_code] == [
        403,
        403,
        403,
        403,
    ]
    assert "This form was stale or did not come from this site." in missing.text
    assert Switch(redis).paused() == []
    assert client.post("/pause", data={"lane": "all", "csrf": token}).status_code == 200


def test_overview_shows_lanes_counts_and_security_headers(dead: None, client: httpx.Client) -> None:
    """The overview lists every lane with its depth and the counters workers keep."""
    log_in(client)

    page = client.get("/")

    assert page.status_code == 200
    for lane in ("urgent", "default", "bulk"):
        assert f'<tr data-lane="{lane}">' in page.text
    assert '<td class="num"><a href="/dead">3</a></td>' in page.text
    assert (
        '<tr><th>Intake entries waiting (<code>smsq:intake</code>)</th><td class="num">0</td></tr>'
    ) in page.text
    assert '<tr><td>rejected</td><td class="num">1</td></tr>' in page.text
    assert '<tr><td>114</td><td>default</td><td class="num">1</td></tr>' in page.text
    assert page.headers["content-security-policy"].startswith(
        "default-src 'self'; style-src 'self' 'unsafe-inline'"
    )
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text


def test_dead_letters_list_and_filters(dead: None, client: httpx.Client) -> None:
    """All three dead letters are listed; each filter keeps only what matches."""
    log_in(client)

    everything = client.get("/dead")
    rejected = client.get("/dead", params={"status": "114"})
    expired = client.get("/dead", params={"state": "expired", "lane": "urgent"})
    by_reason = client.get("/dead", params={"reason": "502"})
    by_campaign = client.get("/dead", params={"campaign": "u", "since": "2000-01-01T00:00"})
    future = client.get("/dead", params={"since": "2999-01-01T00:00:00+01:00"})
    bad = client.get("/dead", params={"status": "abc"})
    superscript = client.get("/dead", params={"status": "²"})
    bad_time = client.get("/dead", params={"until": "yesterday"})

    assert everything.status_code == 200
    assert sorted(dead_keys(everything.text)) == ["expired-1", "rejected-1", "unknown-1"]
    assert dead_keys(rejected.text) == ["rejected-1"]
    assert "<td>114</td>" in rejected.text
    assert dead_keys(expired.text) == ["expired-1"]
    assert dead_keys(by_reason.text) == ["unknown-1"]
    assert dead_keys(by_campaign.text) == ["unknown-1"]
    assert (future.status_code, dead_keys(future.text)) == (200, [])
    assert "No dead letters match." in future.text
    assert bad.status_code == 400
    assert "Filter status: must be an AllMySMS status number such as 114" in bad.text
    assert (superscript.status_code, bad_time.status_code) == (400, 400)
    assert "Filter until: must be an ISO-8601 time" in bad_time.text


def test_message_page_shows_record_history_and_actions(dead: None, client: httpx.Client) -> None:
    """A rejected message's page shows its history and the Requeue and Purge buttons (not
    Resolve: only unknown messages are resolved)."""
    log_in(client)

    page = client.get("/messages/rejected-1")
    sent = client.get("/messages/sent-1")
    missing = client.get("/messages/nope")

    assert page.status_code == 200
    assert '<dd id="state">rejected</dd>' in page.text
    history = page.text.split('<table id="history">')[1].split("</table>")[0]
    assert re.findall(r"<td>(queued|sending|rejected)</td>", history) == [
        "queued",
        "sending",
        "rejected",
    ]
    assert "114 no valid number" in page.text
    assert 'action="/messages/rejected-1/requeue"' in page.text
    assert 'action="/messages/rejected-1/resolve"' not in page.text
    assert 'action="/messages/rejected-1/purge"' in page.text
    assert (sent.status_code, "/requeue" in sent.text) == (200, False)
    assert missing.status_code == 404
    assert str(escape("No message has the key 'nope'")) in missing.text
    for answer in (page, sent, missing, client.get("/"), client.get("/dead")):
        assert API_KEY not in answer.text
        assert PASSWORD not in answer.text


def test_requeue_needs_confirmation_then_the_message_is_sent(
    dead: None, client: httpx.Client, store: MessageStore, workers: Workers
) -> None:
    """The first POST only asks; the confirmed one requeues; a worker then sends it."""
    token = log_in(client)

    asked = client.post("/messages/rejected-1/requeue", data={"csrf": token})
    state_after_asking = store.get("rejected-1")
    done = client.post("/messages/rejected-1/requeue", data={"csrf": token, "confirm": "1"})

    assert asked.status_code == 200
    assert "<h1>Requeue this message?</h1>" in asked.text
    assert '<input type="hidden" name="confirm" value="1">' in asked.text
    assert state_after_asking is not None
    assert state_after_asking.state is State.REJECTED
    assert done.status_code == 200
    assert '<div class="notice ok" role="status">Requeued: job smsq-' in done.text
    assert "on lane default</div>" in done.text
    record = store.get("rejected-1")
    assert record is not None
    assert record.state is State.QUEUED
    assert record.history[-1]["by"] == f"web:{USER}"
    assert workers.run_burst().returncode == 0
    record = store.get("rejected-1")
    assert record is not None
    assert record.state is State.SENT


def test_requeue_of_an_unknown_message_is_refused_with_the_pages_reason(
    dead: None, client: httpx.Client, redis: Redis, store: MessageStore
) -> None:
    """An unknown message may have been sent: the desk refuses too, and the page says why in
    the words of the line that replaces its Requeue button."""
    token = log_in(client)
    desk = DeadLetterDesk(redis, Ledger(redis, ttl_s=60, worker_name="t"), ttl_s=60)
    reason = desk.requeue("unknown-1", actor="t", dry_run=True).detail

    answer = client.post("/messages/unknown-1/requeue", data={"csrf": token, "confirm": "1"})
    missing = client.post("/messages/nope/requeue", data={"csrf": token, "confirm": "1"})

    assert (reason.startswith("may have been sent"), answer.status_code) == (True, 409)
    assert (
        '<div class="notice error" role="alert">Refused: an unknown message may have been sent; '
        "resolve it first (as not sent, it can then be requeued)</div>"
    ) in answer.text
    record = store.get("unknown-1")
    assert record is not None
    assert record.state is State.UNKNOWN
    assert missing.status_code == 409
    assert "Refused: no message with that key or dead-letter id" in missing.text


def test_resolve_not_sent_then_requeue(
    dead: None, client: httpx.Client, store: MessageStore
) -> None:
    """Resolving needs a reason and a confirmation; a not-sent message can then be requeued."""
    token = log_in(client)
    url = "/messages/unknown-1/resolve"

    no_why = client.post(url, data={"csrf": token, "outcome": "not-sent", "why": "  "})
    no_outcome = client.post(url, data={"csrf": token, "why": "checked"})
    asked = client.post(
        url, data={"csrf": token, "outcome": "not-sent", "why": "absent from the AllMySMS report"}
    )
    done = client.post(
        url,
        data={
            "csrf": token,
            "outcome": "not-sent",
            "confirm": "1",
            "why": "absent from the AllMySMS report",
        },
    )
    requeued = client.post("/messages/unknown-1/requeue", data={"csrf": token, "confirm": "1"})

    assert (no_why.status_code, no_outcome.status_code) == (400, 400)
    assert "Say how you know (why) before resolving." in no_why.text
    assert "Say what happened: sent or not sent." in no_outcome.text
    assert asked.status_code == 200
    assert "was NOT sent, because: absent from the AllMySMS report" in asked.text
    assert done.status_code == 200
    assert (
        "Resolved: now failed: not sent according to web:ops: absent from the AllMySMS report"
    ) in done.text
    assert requeued.status_code == 200
    record = store.get("unknown-1")
    assert record is not None
    assert record.state is State.QUEUED
    assert [(h["state"], h.get("by")) for h in record.history[-2:]] == [
        ("failed", "web:ops"),
        ("queued", "web:ops"),
    ]


def test_resolve_sent_on_a_rejected_message_is_refused(dead: None, client: httpx.Client) -> None:
    """Only unknown messages are resolved; the desk's refusal is shown."""
    token = log_in(client)
    answer = client.post(
        "/messages/rejected-1/resolve",
        data={"csrf": token, "outcome": "sent", "why": "x", "confirm": "1"},
    )
    assert answer.status_code == 409
    assert "Refused: only an unknown message is resolved, and this one is rejected" in answer.text


def test_pause_and_resume_lanes_from_the_overview(client: httpx.Client, redis: Redis) -> None:
    """Pausing asks first, then writes the switch with the web user; resuming lifts it."""
    token = log_in(client)
    switch = Switch(redis)

    asked = client.post("/pause", data={"csrf": token, "lane": "default", "reason": "audit"})
    paused_after_asking = switch.paused()
    done = client.post(
        "/pause", data={"csrf": token, "lane": "default", "reason": "audit", "confirm": "1"}
    )
    [pause] = switch.paused()
    all_done = client.post("/pause", data={"csrf": token, "lane": "all", "confirm": "1"})
    lanes_paused = sorted(p.lane for p in switch.paused())
    one = client.post("/resume", data={"csrf": token, "lane": "default", "confirm": "1"})
    rest = client.post("/resume", data={"csrf": token, "lane": "all", "confirm": "1"})
    bad = client.post("/pause", data={"csrf": token, "lane": "nope", "confirm": "1"})

    assert asked.status_code == 200
    assert "<h1>Pause lane default?</h1>" in asked.text
    assert '<input type="text" name="reason" value="audit"' in asked.text
    assert paused_after_asking == []
    assert done.status_code == 200
    assert "Paused lane default: audit" in done.text
    assert (pause.lane, pause.reason, pause.by) == ("default", "audit", "web:ops")
    assert isinstance(pause, Pause)
    assert all_done.status_code == 200
    assert lanes_paused == ["*", "default"]
    assert "Resumed: default." in one.text
    assert "Resumed: every lane." in rest.text
    assert switch.paused() == []
    assert bad.status_code == 400


def test_metrics_and_healthz(client: httpx.Client, producer: Producer) -> None:
    """/metrics is Prometheus text from Redis; /healthz answers when Redis does."""
    producer.enqueue({"key": "waiting", "text": "Hi", "to": ["0612345678"]})

    metrics = client.get("/metrics")
    health = client.get("/healthz")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'smsq_queue_depth{lane="default"} 1.0' in metrics.text
    assert (health.status_code, health.json()) == (200, {"ok": True})


def test_redis_down_gives_503_without_a_traceback(
    redis_server: RedisServer, client: httpx.Client
) -> None:
    """With Redis unreachable, /healthz is 503 and pages say so without any traceback; a login
    (whose session lives in Redis) cannot start, one already started cannot be checked."""
    log_in(client)
    # No retries: the answer is the same, without redis-py's back-off between attempts.
    dead_redis = Redis(
        port=free_port(),
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    app = create_app(admin_settings(redis_server.url), dead_redis)
    with (
        running(app, port=free_port()) as base_url,
        httpx.Client(base_url=base_url, timeout=10) as http,
    ):
        health = http.get("/healthz")
        token = csrf_of(http.get("/login").text)
        login = http.post("/login", data={"csrf": token, "user": USER, "password": PASSWORD})
        http.cookies = client.cookies
        page = http.get("/")
        metrics = http.get("/metrics")

    assert (health.status_code, health.json()) == (503, {"ok": False})
    assert (login.status_code, page.status_code) == (503, 503)
    assert "Redis is not answering." in login.text
    assert "Redis is not answering." in page.text
    assert metrics.status_code == 503
    for text in (login.text, page.text, metrics.text):
        assert "Traceback" not in text
        assert "redis.exceptions" not in text


def test_any_key_text_reaches_its_message_page(
    client: httpx.Client,
    producer: Producer,
    sandbox: SandboxProvider,
    workers: Workers,
    store: MessageStore,
) -> None:
    """A key with slashes, spaces, accents and URL syntax links, shows and requeues."""
    sandbox.add_fault({"action": "status", "status": 114, "times": 2, "match": {"campaign": "odd"}})
    producer.enqueue_many(
        [
            {"key": key, "text": "Hi", "to": ["0612345678"], "campaign": "odd"}
            for key in (ODD_KEY, "..")
        ]
    )
    workers.run_burst()
    token = log_in(client)

    listing = client.get("/dead")
    page = client.get(message_url(ODD_KEY))
    dots = client.get(message_url(".."))
    done = client.post(message_url(ODD_KEY, "requeue"), data={"csrf": token, "confirm": "1"})

    assert sorted(dead_keys(listing.text)) == sorted([str(escape(ODD_KEY)), ".."])
    assert f'href="{escape(message_url(ODD_KEY))}"' in listing.text
    assert page.status_code == 200
    assert f"<code>{escape(ODD_KEY)}</code>" in page.text
    assert dots.status_code == 200
    assert "<code>..</code>" in dots.text
    assert done.status_code == 200
    record = store.get(ODD_KEY)
    assert record is not None
    assert record.state is State.QUEUED


def test_smsq_admin_serves_and_stops_cleanly_on_sigterm(redis_server: RedisServer) -> None:
    """``smsq admin`` prints where it listens, serves, and exits 0 on SIGTERM."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "admin", "--port", str(port)],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": redis_server.url,
            "SMSQ_ADMIN_PASSWORD": PASSWORD,
            "SMSQ_ADMIN_SESSION_SECRET": SESSION_SECRET,
            "SMSQ_LOG_FORMAT": "json",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == f"admin listening on http://127.0.0.1:{port}/\n"
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        login = httpx.get(f"http://127.0.0.1:{port}/login", timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert (health.status_code, login.status_code) == (200, 200)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert PASSWORD not in err


def test_a_login_ends_after_eight_hours_or_a_password_change(
    client: httpx.Client, redis_server: RedisServer, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session counts from its login, and a new password logs every session out."""
    log_in(client)
    settings = admin_settings(redis_server.url)
    changed = Settings(
        producer=settings.producer,
        admin_user=USER,
        admin_password=Secret(PASSWORD + "-new"),
        admin_session_secret=settings.admin_session_secret,
    )

    with running(create_app(settings, redis), port=free_port()) as same_url:
        same_settings = httpx.get(f"{same_url}/", cookies=client.cookies, timeout=10)
    with running(create_app(changed, redis), port=free_port()) as other_url:
        after_change = httpx.get(f"{other_url}/", cookies=client.cookies, timeout=10)
    still_in = client.get("/")
    monkeypatch.setattr(sessions, "SESSION_MAX_AGE_S", 0)
    expired = client.get("/")

    assert same_settings.status_code == 200
    assert (after_change.status_code, after_change.headers["location"]) == (303, "/login?next=%2F")
    assert still_in.status_code == 200
    assert (expired.status_code, expired.headers["location"]) == (303, "/login?next=%2F")


def test_errors_are_pages_without_tracebacks(client: httpx.Client, redis: Redis) -> None:
    """An unknown path is a 404 page, a broken record a generic 500 page; a huge form is 413."""
    log_in(client)
    broken = keys.message_id("broken")
    redis.hset(
        keys.message(broken),
        mapping={"key": "broken", "message_id": broken, "state": "no-such-state"},
    )

    missing = client.get("/nowhere")
    wrong_method = client.get("/logout")
    failed = client.get("/messages/broken")
    too_big = announce_body(str(client.base_url), "/login", 100_000)

    assert (missing.status_code, wrong_method.status_code, failed.status_code) == (404, 405, 500)
    assert too_big.startswith(b"HTTP/1.1 413 ")
    assert "There is no page here." in missing.text
    assert "Something went wrong on the server; it has been logged." in failed.text
    for answer in (missing, wrong_method, failed):
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "Traceback" not in answer.text
        assert "no-such-state" not in answer.text


def test_a_copied_cookie_is_refused_everywhere_after_logout(
    admin: str, client: httpx.Client, redis: Redis
) -> None:
    """Logout ends the session on the server: a copy of its cookie taken before is worthless."""
    token = log_in(client)
    copied = httpx.Cookies(client.cookies)
    with httpx.Client(base_url=admin, timeout=10, cookies=copied) as thief:
        before = thief.get("/")
        [record] = redis.keys(f"{sessions.SESSION_PREFIX}*")
        logout = client.post("/logout", data={"csrf": token})
        pause = thief.post("/pause", data={"lane": "all", "confirm": "1", "csrf": token})
        pages = [thief.get(path) for path in ("/", "/dead", "/messages/sent-1")]
        actions = [
            thief.post(path, data={"lane": "all", "confirm": "1", "csrf": token})
            for path in ("/resume", "/messages/sent-1/requeue")
        ]

    assert before.status_code == 200
    # Redis holds the session id's SHA-256, never the id the cookie carries.
    assert len(record) == len(sessions.SESSION_PREFIX) + 64
    assert (logout.status_code, logout.headers["location"]) == (303, "/login")
    assert (pause.status_code, pause.headers["location"]) == (303, "/login?next=%2Fpause")
    assert [(p.status_code, p.headers["location"]) for p in pages] == [
        (303, "/login?next=%2F"),
        (303, "/login?next=%2Fdead"),
        (303, "/login?next=%2Fmessages%2Fsent-1"),
    ]
    assert [(a.status_code, a.headers["location"]) for a in actions] == [
        (303, "/login?next=%2Fresume"),
        (303, "/login?next=%2Fmessages%2Fsent-1%2Frequeue"),
    ]
    assert Switch(redis).paused() == []
    assert redis.keys(f"{sessions.SESSION_PREFIX}*") == []


def test_a_session_expires_in_redis_with_its_cookie(client: httpx.Client, redis: Redis) -> None:
    """The server-side record lives as long as the login may (8 h), not forever."""
    log_in(client)
    [record] = redis.keys(f"{sessions.SESSION_PREFIX}*")
    assert 28790 <= redis.ttl(record) <= 28800
    redis.delete(record)
    assert client.get("/").status_code == 303


@pytest.mark.parametrize("secure", [True, False])
def test_session_cookie_attributes(redis_server: RedisServer, redis: Redis, secure: bool) -> None:
    """Secure by default (SMSQ_ADMIN_COOKIE_SECURE), always HttpOnly and SameSite=Strict."""
    settings = dataclasses.replace(admin_settings(redis_server.url), admin_cookie_secure=secure)
    with (
        running(create_app(settings, redis), port=free_port()) as base_url,
        httpx.Client(base_url=base_url, timeout=10) as http,
    ):
        login_page = http.get("/login")
        token = csrf_of(login_page.text)
        # Sent by hand: httpx, like a browser, keeps a Secure cookie from http:// to itself.
        cookie = login_page.headers["set-cookie"].split(";")[0]
        answer = http.post(
            "/login",
            data={"csrf": token, "user": USER, "password": PASSWORD},
            headers={"Cookie": cookie},
        )

    assert answer.status_code == 303
    secure_flag = "; secure" if secure else ""
    for response in (login_page, answer):
        name, _, attributes = set_cookies(response)["smsq_admin"].partition("; ")
        assert name.startswith("smsq_admin=")
        assert attributes == f"path=/; Max-Age=28800; httponly; samesite=strict{secure_flag}"
    device = set_cookies(answer)["smsq_admin_device"]
    assert device.split("; ", 1)[1] == (
        f"HttpOnly; Max-Age=7776000; Path=/login; SameSite=strict{secure_flag.title()}"
    )
    assert Settings.from_env({}).admin_cookie_secure is True
    assert Settings.from_env({"SMSQ_ADMIN_COOKIE_SECURE": "false"}).admin_cookie_secure is False


def test_an_intake_dead_letter_opens_from_the_list_and_can_be_purged(
    client: httpx.Client, redis: Redis
) -> None:
    """The list links each refused intake entry to its page (never a 404): kind, the key it
    named, the reason and its payload with controls shown as escapes; purge asks, then acts."""
    named = '{"key": "bad-1", "text": "", "to": ["0612345678"]}'
    hostile = "\x1b]0;pwn\x07 <b>not json</b>\u202e"
    redis.rpush(keys.INTAKE, named, hostile)
    producer = Producer(redis, ProducerSettings())
    intake = Intake(redis, producer, ttl_s=3600, worker_name="w", max_bytes=4096)
    assert intake.drain() == 2
    ids = {
        raw: "intake-" + hashlib.sha256(raw.encode()).hexdigest()[:24] for raw in (named, hostile)
    }
    token = log_in(client)

    listing = client.get("/dead").text
    links = re.findall(r'<a class="letter" href="([^"]+)">([^<]+)</a>', listing)
    pages = {dead_id: client.get(html.unescape(href)) for href, dead_id in links}
    missing = client.get("/dead/letter?id=intake-nope")
    asked = client.post(f"/dead/letter/purge?id={ids[named]}", data={"csrf": token})
    done = client.post(f"/dead/letter/purge?id={ids[named]}", data={"csrf": token, "confirm": "1"})

    assert sorted(links) == sorted((f"/dead/letter?id={i}", i) for i in ids.values())
    assert f'{ids[named]}</a> <span class="muted">key bad-1</span>' in listing
    assert {i: p.status_code for i, p in pages.items()} == dict.fromkeys(ids.values(), 200)
    first, second = pages[ids[named]].text, pages[ids[hostile]].text
    assert '<dd id="kind">intake</dd>' in first
    assert '<dd id="key">bad-1 <span class="muted">(as the entry named it' in first
    assert '<dd id="reason">text: must not be empty</dd>' in first
    assert '<p class="muted" id="extent">50 bytes, as received;' in first
    assert f'<pre id="payload">{escape(named)}</pre>' in first
    assert '<dd id="reason">not valid JSON</dd>' in second
    assert ('<pre id="payload">\\x1b]0;pwn\\x07 &lt;b&gt;not json&lt;/b&gt;\\u202e</pre>') in second
    assert "\x1b" not in second
    assert '<dd id="key">' not in second
    assert missing.status_code == 404
    assert "No dead letter has the id &#39;intake-nope&#39; (it was purged, or has expired)." in (
        missing.text
    )
    assert asked.status_code == 200
    assert "<h1>Purge this dead letter?</h1>" in asked.text
    assert f'action="/dead/letter/purge?id={ids[named]}"' in asked.text
    assert done.status_code == 200
    assert (
        f'<div class="notice ok" role="status">Purged: {ids[named]} (intake dead letter removed)'
    ) in done.text
    assert redis.exists(keys.dead_letter(ids[named])) == 0
    assert [d.dead_id for d in MessageStore(redis).dead_letters()] == [ids[hostile]]


def test_purging_a_messages_dead_letter_keeps_the_message(
    dead: None, client: httpx.Client, store: MessageStore
) -> None:
    token = log_in(client)

    asked = client.post("/messages/rejected-1/purge", data={"csrf": token})
    done = client.post("/messages/rejected-1/purge", data={"csrf": token, "confirm": "1"})
    again = client.post("/messages/rejected-1/purge", data={"csrf": token, "confirm": "1"})

    assert asked.status_code == 200
    assert "Its record stays rejected until it expires; nothing is sent." in asked.text
    assert done.status_code == 200
    assert '<div class="notice ok" role="status">Purged: message dead letter removed</div>' in (
        done.text
    )
    assert 'action="/messages/rejected-1/purge"' not in done.text
    assert "Purge: not offered, this message has no dead letter to forget." in done.text
    record = store.get("rejected-1")
    assert record is not None
    assert record.state is State.REJECTED
    assert sorted(d.key or "" for d in store.dead_letters()) == ["expired-1", "unknown-1"]
    assert again.status_code == 409
    assert "Refused: this message has no dead letter to forget</div>" in again.text
