"""Fixtures: a real redis-server per session, the sandbox provider over real sockets, and real
``smsq worker`` processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog
from hypothesis import HealthCheck, settings
from redis import Redis

from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.store import MessageStore
from tests.helpers.browser import CHROMIUM
from tests.helpers.processes import API_KEY, LOGIN, Workers
from worker.dev.redis_server import RedisServer
from worker.sandbox import SandboxProvider


if TYPE_CHECKING:
    from tests.helpers.callbacks import Receiver


settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("SMSQ_HYPOTHESIS_PROFILE", "ci"))
"""Property-based tests run 200 examples each by default (bounded CI time);
``SMSQ_HYPOTHESIS_PROFILE=long`` (or ``--hypothesis-profile=long``) runs 20,000."""

PROCESS_FIXTURES = frozenset({"workers"})
"""Fixtures that start real smsq processes: a test using one is marked ``workers``."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow part of the suite, so ``-m "not workers and not browser"`` runs the fast
    part (see README, Development)."""
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.workers)
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.fuzz)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer().start()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[Redis]:
    """A client on the session's redis-server, flushed before and after each test."""
    client = Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def producer(redis: Redis) -> Producer:
    return Producer(redis, ProducerSettings())


@pytest.fixture
def store(redis: Redis) -> MessageStore:
    return MessageStore(redis)


@pytest.fixture
def sandbox() -> Iterator[SandboxProvider]:
    provider = SandboxProvider(login=LOGIN, api_key=API_KEY)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A producer's callback endpoint on 127.0.0.1 (see :class:`tests.test_callbacks.Receiver`)."""
    from tests.helpers.callbacks import Receiver

    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; its absence skips locally and fails in CI."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (Debian/Ubuntu: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def workers(
    redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider, tmp_path: Path
) -> Iterator[Workers]:
    pool = Workers(redis_server.url, sandbox.base_url, tmp_path)
    yield pool
    pool.stop_all()
