"""The admin login throttle against distributed guessing and behind reverse proxies: real
uvicorn servers, clients on loopback, X-Forwarded-For as a proxy would send it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_network

import httpx
import pytest
from redis import Redis

from tests.helpers.admin import PASSWORD, USER, admin_settings
from worker.admin import create_app
from worker.admin.throttle import FAILURES_KEY, SITE_MAX_FAILURES
from worker.asgi import running
from worker.dev.redis_server import RedisServer, free_port
from worker.settings import ServerSettings


@contextmanager
def admin_behind(redis_server: RedisServer, redis: Redis, proxies: str) -> Iterator[str]:
    """The admin page trusting ``proxies`` (comma-separated CIDRs); yields its base URL."""
    networks = tuple(ip_network(p) for p in proxies.split(",") if p)
    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port(), server=ServerSettings(trusted_proxies=networks)) as url:
        yield url


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def attempt(http: httpx.Client, password: str, forwarded_for: str | None = None) -> int:
    """One login through the form, optionally relayed for ``forwarded_for``; its status."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    token = csrf_of(http.get("/login", headers=headers).text)
    answer = http.post(
        "/login", data={"csrf": token, "user": USER, "password": password}, headers=headers
    )
    return answer.status_code


@pytest.fixture
def proxied(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    """Behind a proxy on 127.0.0.1, correctly listed in SMSQ_TRUSTED_PROXIES."""
    with admin_behind(redis_server, redis, "127.0.0.1/32") as url:
        yield url


def test_distributed_guessing_is_bounded_by_the_site_budget(
    proxied: str, redis: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """40 addresses x 5 guesses: only SITE_MAX_FAILURES passwords are checked in the window. A
    browser that logged in before still gets in; a never-seen one waits for the window."""
    with httpx.Client(base_url=proxied, timeout=10) as operator:
        assert attempt(operator, PASSWORD, "198.51.100.9") == 303
        assert (
            operator.post("/logout", data={"csrf": csrf_of(operator.get("/").text)}).status_code
            == 303
        )

        with httpx.Client(base_url=proxied, timeout=10) as attacker:
            statuses = Counter(
                attempt(attacker, "guess-" + str(n), f"203.0.113.{a}")
                for a in range(1, 41)
                for n in range(5)
            )
        with httpx.Client(base_url=proxied, timeout=10) as newcomer:
            new_browser = attempt(newcomer, PASSWORD, "198.51.100.10")
        known_browser = attempt(operator, PASSWORD, "198.51.100.9")

    assert statuses == {401: SITE_MAX_FAILURES, 429: 200 - SITE_MAX_FAILURES}
    assert int(redis.get(FAILURES_KEY) or 0) == SITE_MAX_FAILURES
    assert 0 < redis.ttl(FAILURES_KEY) <= 60  # the window, counted from the first failure
    assert (new_browser, known_browser) == (429, 303)
    out = capsys.readouterr().out
    assert out.count("admin.login.failed") == SITE_MAX_FAILURES
    assert "client=203.0.113.1 " in out  # the forwarded address is the one logged


def test_behind_a_trusted_proxy_one_operators_lockout_is_not_anothers(proxied: str) -> None:
    """Five failures lock out the address the proxy forwards, not the proxy itself."""
    with httpx.Client(base_url=proxied, timeout=10) as proxy:
        failures = [attempt(proxy, "wrong", "203.0.113.7") for _ in range(5)]
        locked = attempt(proxy, PASSWORD, "203.0.113.7")
        other_operator = attempt(proxy, PASSWORD, "198.51.100.20")
    assert (failures, locked, other_operator) == ([401] * 5, 429, 303)


@pytest.mark.parametrize("proxies", ["", "127.0.0.2/32"])
def test_forwarded_for_is_ignored_from_an_untrusted_peer(
    redis_server: RedisServer, redis: Redis, proxies: str
) -> None:
    """No proxy listed, or another one: a forged X-Forwarded-For changes nothing, each guess
    counts against the real peer, and rotating the header does not reset the lock-out."""
    with (
        admin_behind(redis_server, redis, proxies) as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        failures = [attempt(http, "wrong", f"203.0.113.{n}") for n in range(5)]
        rotated = attempt(http, PASSWORD, "198.51.100.30")
    assert (failures, rotated) == ([401] * 5, 429)


def test_a_known_browser_is_still_limited_per_device(proxied: str, redis: Redis) -> None:
    """The device cookie lets a browser past a spent site budget, not past its own limit: five
    failures with it, from rotating addresses, and it waits too."""
    with httpx.Client(base_url=proxied, timeout=10) as browser:
        assert attempt(browser, PASSWORD, "198.51.100.40") == 303
        assert (
            browser.post("/logout", data={"csrf": csrf_of(browser.get("/").text)}).status_code
            == 303
        )
        redis.set(FAILURES_KEY, SITE_MAX_FAILURES, ex=60)
        failures = [attempt(browser, "wrong", f"203.0.113.{n}") for n in range(50, 55)]
        blocked = attempt(browser, PASSWORD, "203.0.113.60")
        browser.cookies.clear()
        without_cookie = attempt(browser, PASSWORD, "203.0.113.61")
    assert (failures, blocked, without_cookie) == ([401] * 5, 429, 429)
