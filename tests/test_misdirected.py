"""A wrong ``ALLMYSMS_BASE_URL``: answers that prove sendSms was never reached pause the lanes
with a reason naming the setting, and the message goes back unsent (not ``unknown``)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from producers.enqueue import Producer
from producers.errors import ConfigError, MisdirectedError, OutcomeUnknownError
from producers.states import State
from producers.store import MessageStore
from tests.helpers.gateway import self_signed
from tests.helpers.processes import Workers
from worker.allmysms.client import AllMySmsClient
from worker.sandbox import SandboxProvider
from worker.settings import Secret, Settings
from worker.store.control import Switch


FLUX = {"DATA": {"MESSAGE": "Hi", "SMS": [{"MOBILEPHONE": "33612345678"}]}}


def client(base_url: str, transport: httpx.BaseTransport | None = None) -> AllMySmsClient:
    return AllMySmsClient(
        base_url=base_url,
        login="shop",
        api_key=Secret("k" * 20),
        timeout=httpx.Timeout(2.0),
        transport=transport,
    )


@pytest.mark.parametrize("status", [404, 405, 410, 421])
def test_an_answer_from_no_sendsms_is_misdirected(status: int) -> None:
    answers = httpx.MockTransport(lambda request: httpx.Response(status, text="<html>nope"))

    with pytest.raises(MisdirectedError) as raised:
        client("https://api.example/wrong", answers).send(FLUX)

    assert (
        str(raised.value)
        == f"HTTP {status} from https://api.example/wrong/sendSms/: no sendSms there"
    )
    assert raised.value.http_status == status


def test_other_http_errors_stay_unknown() -> None:
    answers = httpx.MockTransport(lambda request: httpx.Response(500, text="oops"))

    with pytest.raises(OutcomeUnknownError) as raised:
        client("https://api.example/http/9.0", answers).send(FLUX)

    assert not isinstance(raised.value, MisdirectedError)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[int]:
    """A TLS server on 127.0.0.1 whose certificate is for another name (and self-signed)."""
    cert, key = self_signed(tmp_path, "other.example", "DNS:other.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_a_refused_certificate_is_misdirected(tls_server: int) -> None:
    with pytest.raises(MisdirectedError) as raised:
        client(f"https://127.0.0.1:{tls_server}/http/9.0").send(FLUX)

    assert str(raised.value).startswith("the TLS certificate of 127.0.0.1 is refused (")


def test_an_empty_base_url_is_an_error_not_production() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"ALLMYSMS_BASE_URL": "  "})

    assert str(raised.value) == (
        "ALLMYSMS_BASE_URL: is empty; leave it out for AllMySMS itself "
        "(https://api.allmysms.com/http/9.0) or set the sandbox's URL"
    )
    assert Settings.from_env({}).base_url == "https://api.allmysms.com/http/9.0"


def test_a_base_url_without_the_api_path_pauses_the_lanes_and_sends_nothing(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """The sandbox answers 404 off /http/9.0, as any web server would: 20 messages stay queued
    (not unknown), the lanes pause naming the setting, and once fixed each goes out once."""
    producer = Producer(redis)
    producer.enqueue_many([{"key": f"m{n}", "text": "Hi", "to": ["0612345678"]} for n in range(20)])
    wrong = workers.base_url.removesuffix("/http/9.0")

    run = workers.run_burst(ALLMYSMS_BASE_URL=wrong)

    assert run.returncode == 0, run.log
    assert {store.get(f"m{n}").state for n in range(20)} == {State.QUEUED}  # type: ignore[union-attr]
    [pause] = Switch(redis).paused()
    assert (pause.lane, pause.reason) == (
        "*",
        f"ALLMYSMS_BASE_URL: HTTP 404 from {wrong}/sendSms/: no sendSms there",
    )
    assert sandbox.requests() == []
    assert workers.smsq("resume", "all").returncode == 0
    again = workers.run_burst()
    assert again.returncode == 0, again.log
    assert len(sandbox.requests()) == 20
    assert {store.get(f"m{n}").state for n in range(20)} == {State.SENT}  # type: ignore[union-attr]
