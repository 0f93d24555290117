"""Fixtures: a real redis-server per session, the sandbox provider over real sockets, and real
``smsq worker`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest
import structlog
from redis import Redis

from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.store import MessageStore
from worker.dev.redis_server import RedisServer
from worker.sandbox import SandboxProvider


if TYPE_CHECKING:
    from tests.test_callbacks import Receiver


ROOT = Path(__file__).resolve().parent.parent
LOGIN = "smsq-test"
API_KEY = "sk-test-6f1d2c9a8b7e4d3c2b1a"
"""A recognisable fake apiKey: tests scan logs and Redis for it."""
WORKER_TIMEOUT_S = 60


PROCESS_FIXTURES = frozenset({"workers"})
"""Fixtures that start real smsq processes: a test using one is marked ``workers``."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow part of the suite, so ``-m "not workers and not browser"`` runs the fast
    part (see README, Development)."""
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.workers)


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
    from tests.test_callbacks import Receiver

    server = Receiver()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@dataclass
class WorkerRun:
    returncode: int
    log: str

    def events(self) -> list[dict[str, Any]]:
        import json

        out = []
        for line in self.log.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


@dataclass
class Workers:
    """Runs ``smsq worker`` as real processes against the test redis-server and sandbox."""

    redis_url: str
    base_url: str
    log_dir: Path
    started: list[subprocess.Popen[str]] = field(default_factory=list)
    log_files: list[IO[str]] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSQ_", "ALLMYSMS_"))}
        env.update({
            "REDIS_URL": self.redis_url, "ALLMYSMS_LOGIN": LOGIN, "ALLMYSMS_API_KEY": API_KEY,
            "ALLMYSMS_BASE_URL": self.base_url, "SMSQ_LOG_FORMAT": "json",
            "SMSQ_LOG_LEVEL": "DEBUG", "SMSQ_HTTP_READ_TIMEOUT_S": "5",
            "SMSQ_RETRY_INITIAL_WAIT_S": "0.05", "SMSQ_RETRY_MAX_WAIT_S": "0.2",
            "SMSQ_SEND_MAX_WAIT_S": "5", "PYTHONPATH": str(ROOT),
        })
        env.update(overrides)
        return env

    def run_burst(self, *args: str, **env: str) -> WorkerRun:
        """Run ``smsq worker --burst`` to completion and return its exit code and log."""
        proc = subprocess.run(
            [sys.executable, "-m", "worker", "worker", "--burst", *args],
            env=self.env(**env), capture_output=True, text=True, timeout=WORKER_TIMEOUT_S,
            cwd=ROOT, check=False,
        )
        return WorkerRun(proc.returncode, proc.stdout + proc.stderr)

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """Start ``smsq worker`` (not burst) in the background; stopped at teardown."""
        log = (self.log_dir / f"worker-{len(self.started)}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", *args], env=self.env(**env),
            stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            start_new_session=True)
        self.started.append(proc)
        self.log_files.append(log)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self.log_files:
            log.close()

    def smsq(self, *args: str, stdin: str | None = None, **env: str
             ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker", *args], env=self.env(**env), input=stdin,
            capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, cwd=ROOT, check=False,
        )


@pytest.fixture
def workers(redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider,
            tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(redis_server.url, sandbox.base_url, tmp_path)
    yield pool
    pool.stop_all()


def wait_for(predicate: Callable[[], bool], *, timeout_s: float = 20.0,
             what: str = "condition") -> None:
    """Poll ``predicate`` every 50 ms; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
