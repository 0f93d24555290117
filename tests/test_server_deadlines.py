"""Read deadlines of the HTTP servers: a client trickling its request head or body is cut off,
normal requests (keep-alive included) are not. Raw sockets, real uvicorn servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from tests.helpers.admin import admin_settings
from tests.helpers.processes import ROOT, wait_for
from worker.admin import create_app
from worker.asgi import running
from worker.dev.redis_server import RedisServer, free_port
from worker.settings import ServerSettings


HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
SLACK_S = 4.0
"""Generous upper bound past the deadline on a loaded two-core machine."""
TRICKLE_S = 0.1
REQUEST = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"


@pytest.fixture
def admin(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    """The admin page with short deadlines; yields its base URL."""
    server = ServerSettings(header_timeout_s=HEADER_TIMEOUT_S, body_timeout_s=BODY_TIMEOUT_S)
    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port(), server=server) as base_url:
        yield base_url


def trickle(base_url: str, at_once: bytes, slowly: bytes, *, limit_s: float) -> tuple[bytes, float]:
    """Send ``at_once``, then ``slowly`` one byte every TRICKLE_S (then spaces, never a whole
    request); return what the server answered and when it closed, in seconds after
    ``at_once`` was sent."""
    url = httpx.URL(base_url)
    started = time.monotonic()
    received = b""
    with socket.create_connection((url.host, url.port or 80), timeout=limit_s) as sock:
        sock.settimeout(TRICKLE_S)
        sock.sendall(at_once)
        started = time.monotonic()
        data = slowly
        sent = 0
        while time.monotonic() - started < limit_s:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                chunk = None
            except ConnectionResetError:
                break
            if chunk == b"":
                break
            if chunk:
                received += chunk
                continue
            try:
                # Past the data, keep sending spaces: still never a complete request.
                sock.sendall(data[sent : sent + 1] if sent < len(data) else b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
        else:
            pytest.fail(f"the server kept the connection open for {limit_s} s")
    return received, time.monotonic() - started


def test_a_trickled_request_head_is_cut_off_with_408(admin: str) -> None:
    received, closed_after_s = trickle(admin, b"", REQUEST, limit_s=HEADER_TIMEOUT_S + SLACK_S)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert HEADER_TIMEOUT_S - 0.1 <= closed_after_s <= HEADER_TIMEOUT_S + SLACK_S


def test_a_silent_connection_is_closed_at_the_header_deadline(admin: str) -> None:
    url = httpx.URL(admin)
    started = time.monotonic()
    with socket.create_connection(
        (url.host, url.port or 80), timeout=HEADER_TIMEOUT_S + SLACK_S
    ) as sock:
        received = sock.recv(4096)
        assert sock.recv(4096) == b""
    assert received.startswith(b"HTTP/1.1 408 ")
    assert HEADER_TIMEOUT_S - 0.1 <= time.monotonic() - started <= HEADER_TIMEOUT_S + SLACK_S


def test_a_trickled_body_is_cut_off(admin: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Headers at once, then the announced body one byte at a time: closed at the body deadline,
    without an answer (the application saw a disconnect, which is not a server error)."""
    head = REQUEST + b"Content-Length: 1000\r\n\r\n"
    received, closed_after_s = trickle(
        admin, head, b"csrf=x&user=y" * 100, limit_s=BODY_TIMEOUT_S + SLACK_S
    )
    assert received == b""
    assert BODY_TIMEOUT_S - 0.1 <= closed_after_s <= BODY_TIMEOUT_S + SLACK_S
    seen: list[str] = []

    def logged() -> bool:
        seen.append(capsys.readouterr().out)
        return "admin.client_disconnected" in "".join(seen)

    wait_for(logged, what="the disconnect's log line")
    assert "admin.request_failed" not in "".join(seen)


def test_normal_requests_and_keep_alive_still_work(admin: str) -> None:
    """Requests well inside the deadlines, on one kept-alive connection, past the deadline."""
    with httpx.Client(base_url=admin, timeout=10) as http:
        first = http.get("/healthz")
        time.sleep(HEADER_TIMEOUT_S + 0.5)
        login = http.get("/login")
        form = http.post("/login", data={"user": "x", "password": "y"})
    assert [first.status_code, login.status_code, form.status_code] == [200, 200, 403]


@pytest.mark.parametrize("command", ["gateway", "admin"])
def test_smsq_servers_take_their_deadlines_from_the_environment(
    redis_server: RedisServer, command: str
) -> None:
    """``smsq gateway`` and ``smsq admin`` as real processes: SMSQ_SERVER_HEADER_TIMEOUT_S
    applies, the cut-off is logged, a normal request is served."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_server.url,
        "SMSQ_LOG_FORMAT": "json",
        "SMSQ_SERVER_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "SMSQ_PRODUCERS": json.dumps([{"login": "shop", "api_key": "shop-key-0123456789"}]),
        "SMSQ_ADMIN_PASSWORD": "correct horse battery staple",
        "SMSQ_ADMIN_SESSION_SECRET": "s" * 32,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f"listening on http://127.0.0.1:{port}/" in proc.stdout.readline()
        base_url = f"http://127.0.0.1:{port}"
        received, closed_after_s = trickle(
            base_url, b"", b"GET / HTTP/1.1\r\nHost: x\r\n", limit_s=HEADER_TIMEOUT_S + SLACK_S
        )
        normal = httpx.get(f"{base_url}/healthz", timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert HEADER_TIMEOUT_S - 0.1 <= closed_after_s <= HEADER_TIMEOUT_S + SLACK_S
    assert normal.status_code == 200
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [
        (e["event"], e["phase"], e["client"], e["timeout_s"])
        for e in events
        if e["event"] == "http.read_timeout"
    ] == [("http.read_timeout", "headers", "127.0.0.1", HEADER_TIMEOUT_S)]
    assert proc.returncode == 0, err
