"""``smsq gateway`` limits counted in Redis: the request rate per producer login (holding across
two gateway servers on one redis-server) and the failed-login throttle per client address and
per login. Real sockets; client addresses are loopback addresses 127.0.0.x bound by httpx."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from redis import Redis

from producers.errors import ConfigError
from tests.helpers.gateway import BLOG, PATH, SHOP, gateway_settings, json_flux
from worker.allmysms.flux import STATUS_TEXTS
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.logs import configure_logging
from worker.settings import Settings


WRONG_KEY = "wrong-key-0123456789abcdef"


def start(stack: ExitStack, redis_server: RedisServer, **limits: Any) -> str:
    """One more gateway server, with its own Redis connection, on the shared redis-server."""
    settings = dataclasses.replace(gateway_settings(redis_server.url), **limits)
    connection = stack.enter_context(Redis.from_url(redis_server.url))
    return str(stack.enter_context(running(create_app(settings, connection)))) + PATH


@pytest.fixture
def stack(redis: Redis) -> Iterator[ExitStack]:
    with ExitStack() as servers:
        yield servers


def send(
    url: str, account: tuple[str, str] = SHOP, *, client: str = "127.0.0.1", key: str = ""
) -> httpx.Response:
    """POST a valid JSON flux from the loopback address ``client``."""
    data = {
        "login": account[0],
        "apiKey": account[1],
        "smsData": json_flux(CLIMSGID=key) if key else json_flux(),
        "returnformat": "json",
    }
    transport = httpx.HTTPTransport(local_address=client)
    with httpx.Client(transport=transport, timeout=10) as http:
        return http.post(url, data=data)


def status(response: httpx.Response) -> tuple[int, int]:
    """(HTTP status, body status)."""
    body: dict[str, Any] = json.loads(response.text)
    return response.status_code, body["status"]


def messages(redis: Redis) -> int:
    return sum(1 for k in redis.scan_iter("smsq:msg:*") if not k.endswith(b":history"))


# --- request rate per login -----------------------------------------------------------------


def test_the_rate_per_login_holds_across_two_gateways(
    stack: ExitStack, redis_server: RedisServer, redis: Redis
) -> None:
    """1 request/s with a burst of 3: the window is 3 s and holds 3 requests, wherever sent."""
    first = start(stack, redis_server, gateway_rate_per_s=1.0, gateway_rate_burst=3)
    second = start(stack, redis_server, gateway_rate_per_s=1.0, gateway_rate_burst=3)
    answers = [send(url, key=f"k{n}") for n, url in enumerate([first, second, first, second])]
    assert [status(r) for r in answers] == [(200, 100), (200, 100), (200, 100), (429, 429)]
    refused = answers[3]
    assert 1 <= int(refused.headers["retry-after"]) <= 3
    assert json.loads(refused.text) == {
        "status": 429,
        "statusText": "Too many requests: login shop is over 1 requests per second (burst 3); "
        f"nothing was enqueued. Retry after {refused.headers['retry-after']} s",
    }
    assert messages(redis) == 3
    # Another login has its own count.
    assert status(send(second, BLOG, key="b1")) == (200, 100)
    assert messages(redis) == 4


def test_the_rate_window_reopens(stack: ExitStack, redis_server: RedisServer) -> None:
    url = start(stack, redis_server, gateway_rate_per_s=2.0, gateway_rate_burst=1)
    assert status(send(url, key="a")) == (200, 100)
    assert status(send(url, key="b")) == (429, 429)
    time.sleep(0.6)  # the window is 1 / 2 s
    assert status(send(url, key="c")) == (200, 100)


def test_no_rate_limit_by_default(stack: ExitStack, redis_server: RedisServer) -> None:
    url = start(stack, redis_server)
    assert [status(send(url, key=f"k{n}")) for n in range(30)] == [(200, 100)] * 30


# --- failed-login throttle ------------------------------------------------------------------


def test_an_address_that_keeps_failing_is_locked_out_and_others_are_not(
    stack: ExitStack, redis_server: RedisServer, redis: Redis
) -> None:
    """60 wrong keys from one address: the first 20 are answered 102, the rest 429, even the
    right key from there; another address still sends as shop."""
    url = start(stack, redis_server)
    attacker = "127.0.0.2"
    answers = [status(send(url, (SHOP[0], WRONG_KEY), client=attacker)) for _ in range(60)]
    assert answers == [(200, 102)] * 20 + [(429, 429)] * 40
    locked = send(url, SHOP, client=attacker)
    assert status(locked) == (429, 429)
    assert 1 <= int(locked.headers["retry-after"]) <= 300  # the 300 s lock-out, running
    assert json.loads(locked.text)["statusText"] == (
        "Too many requests: too many failed logins from this address; nothing was enqueued. "
        f"Retry after {locked.headers['retry-after']} s"
    )
    assert status(send(url, SHOP, client="127.0.0.1", key="legit")) == (200, 100)
    assert messages(redis) == 1
    assert [k for k in redis.scan_iter("smsq:gateway:*") if attacker.encode() in k] == []


def test_guessing_against_one_login_locks_out_that_login_only(
    stack: ExitStack, redis_server: RedisServer, redis: Redis
) -> None:
    """Three addresses, each under the per-address limit, guess shop's key 10 times in all:
    shop is locked out everywhere; blog is not."""
    url = start(
        stack,
        redis_server,
        gateway_login_failures_per_address=5,
        gateway_login_failures_per_login=10,
    )
    attackers = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    answers = [status(send(url, (SHOP[0], WRONG_KEY), client=attackers[n % 3])) for n in range(10)]
    assert answers == [(200, 102)] * 10
    locked = send(url, SHOP, client="127.0.0.5")
    assert status(locked) == (429, 429)
    assert json.loads(locked.text)["statusText"].startswith(
        "Too many requests: too many failed logins for login shop;"
    )
    assert status(send(url, BLOG, client="127.0.0.5", key="b")) == (200, 100)
    assert status(send(url, BLOG, client="127.0.0.2", key="c")) == (200, 100)
    assert messages(redis) == 2


def test_unknown_logins_count_per_address_only(
    stack: ExitStack, redis_server: RedisServer, redis: Redis
) -> None:
    url = start(stack, redis_server, gateway_login_failures_per_address=3)
    for n in range(3):
        assert status(send(url, (f"nobody{n}", WRONG_KEY), client="127.0.0.2")) == (200, 102)
    assert status(send(url, ("nobody", WRONG_KEY), client="127.0.0.2")) == (429, 429)
    names = sorted(k.decode() for k in redis.scan_iter("smsq:gateway:*"))
    assert len(names) == 2
    assert [n.rsplit(":", 1)[0] for n in names] == [
        "smsq:gateway:failures:addr",
        "smsq:gateway:lockout:addr",
    ]


def test_a_lockout_ends(stack: ExitStack, redis_server: RedisServer) -> None:
    url = start(
        stack,
        redis_server,
        gateway_login_failures_per_address=2,
        gateway_lockout_s=1.0,
        gateway_login_failure_window_s=1.0,
    )
    assert status(send(url, (SHOP[0], WRONG_KEY))) == (200, 102)
    assert status(send(url, (SHOP[0], WRONG_KEY))) == (200, 102)
    assert status(send(url, SHOP)) == (429, 429)
    time.sleep(1.1)
    assert status(send(url, SHOP, key="after")) == (200, 100)


def test_failed_logins_are_logged_with_login_and_address_never_the_key(
    stack: ExitStack, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = start(stack, redis_server, gateway_login_failures_per_address=2)
    configure_logging(fmt="json", secrets=[SHOP[1]])
    capsys.readouterr()
    send(url, (SHOP[0], WRONG_KEY), client="127.0.0.3")
    send(url, ("nobody", WRONG_KEY), client="127.0.0.3")
    send(url, SHOP, client="127.0.0.3")
    err = capsys.readouterr().err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    failed = [e for e in events if e["event"] == "gateway.login_failed"]
    assert [(e["login"], e["known_login"], e["client"], e["failures"]) for e in failed] == [
        ("shop", True, "127.0.0.3", 1),
        ("nobody", False, "127.0.0.3", 2),
    ]
    locked = [e for e in events if e["event"] == "gateway.login_locked_out"]
    assert [(e["login"], e["client"], e["retry_after_s"]) for e in locked] == [
        ("shop", "127.0.0.3", 300)
    ]
    for leak in (SHOP[1], WRONG_KEY):
        assert leak not in err


def test_the_102_answer_is_unchanged_below_the_limit(
    stack: ExitStack, redis_server: RedisServer
) -> None:
    url = start(stack, redis_server)
    response = send(url, (SHOP[0], WRONG_KEY))
    assert response.status_code == 200
    assert json.loads(response.text) == {"status": 102, "statusText": STATUS_TEXTS[102]}
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("SMSQ_GATEWAY_RATE_PER_S", "-1", "must be at least 0"),
        ("SMSQ_GATEWAY_RATE_BURST", "lots", "must be a whole number"),
        ("SMSQ_GATEWAY_LOGIN_FAILURES_PER_ADDRESS", "-2", "must be at least 0"),
        ("SMSQ_GATEWAY_LOGIN_FAILURES_PER_LOGIN", "1.5", "must be a whole number"),
        ("SMSQ_GATEWAY_LOGIN_FAILURE_WINDOW_S", "0", "must be at least 1"),
        ("SMSQ_GATEWAY_LOCKOUT_S", "0.5", "must be at least 1"),
    ],
)
def test_limit_settings_are_validated(variable: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({variable: value})
    assert str(refused.value) == f"{variable}: {reason}"
