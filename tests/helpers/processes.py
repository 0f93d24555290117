"""Real smsq processes for tests: the worker runner, its logs, and waiting for a condition."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest


if TYPE_CHECKING:
    pass


ROOT = Path(__file__).resolve().parents[2]
"""The checkout: tests/helpers/ is two levels below it."""
LOGIN = "smsq-test"
API_KEY = "sk-test-6f1d2c9a8b7e4d3c2b1a"
"""A recognisable fake apiKey: tests scan logs and Redis for it."""
WORKER_TIMEOUT_S = 60


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
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "ALLMYSMS_LOGIN": LOGIN,
                "ALLMYSMS_API_KEY": API_KEY,
                "ALLMYSMS_BASE_URL": self.base_url,
                "SMSQ_LOG_FORMAT": "json",
                "SMSQ_LOG_LEVEL": "DEBUG",
                "SMSQ_HTTP_READ_TIMEOUT_S": "5",
                "SMSQ_RETRY_INITIAL_WAIT_S": "0.05",
                "SMSQ_RETRY_MAX_WAIT_S": "0.2",
                "SMSQ_SEND_MAX_WAIT_S": "5",
                "SMSQ_LATER_RETRY_FOR_S": "0",
                # No getBlacklist call in the sandbox's log of every test: tests that count
                # requests count sendSms ones (the mirror has its own tests).
                "SMSQ_BLACKLIST_POLL_INTERVAL_S": "0",
                "PYTHONPATH": str(ROOT),
            }
        )
        env.update(overrides)
        return env

    def run_burst(self, *args: str, **env: str) -> WorkerRun:
        """Run ``smsq worker --burst`` to completion and return its exit code and log."""
        proc = subprocess.run(
            [sys.executable, "-m", "worker", "worker", "--burst", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
            cwd=ROOT,
            check=False,
        )
        return WorkerRun(proc.returncode, proc.stdout + proc.stderr)

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """Start ``smsq worker`` (not burst) in the background; stopped at teardown."""
        log = (self.log_dir / f"worker-{len(self.started)}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", *args],
            env=self.env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
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

    def smsq(
        self, *args: str, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker", *args],
            env=self.env(**env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
            cwd=ROOT,
            check=False,
        )


def wait_for(
    predicate: Callable[[], bool], *, timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` every 50 ms; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
