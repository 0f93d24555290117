"""The sandbox provider in its own process (``python -m worker sandbox``), so that its CPU is
never counted as a worker's, plus the few control calls the benchmark needs."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench import procs
from worker.dev.redis_server import free_port


CREDITS = 10**12
"""Each SMS costs 15 credits; the sandbox's default million would run out."""


class Sandbox:
    def __init__(self, *, latency_ms: int, env: dict[str, str], root: Path, log: Path) -> None:
        self.port = free_port()
        self.latency_ms = latency_ms
        self._env = env
        self._root = root
        self._log = log
        self._proc: Any = None
        # trust_env=False: never route loopback traffic through a proxy from the environment.
        self._http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", timeout=60, trust_env=False
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/http/9.0"

    def start(self) -> Sandbox:
        self._proc = procs.spawn(
            [
                sys.executable,
                "-m",
                "worker",
                "sandbox",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--latency-ms",
                str(self.latency_ms),
            ],
            env=self._env,
            log=self._log,
            cwd=self._root,
            stdout=subprocess.PIPE,
        )
        line = self._proc.stdout.readline()  # "sandbox listening on ..." once it listens
        if b"listening" not in line:
            raise RuntimeError(f"sandbox did not start, see {self._log}")
        self._proc.stdout.close()
        self._http.post("/_sandbox/credits", json={"credits": CREDITS}).raise_for_status()
        return self

    def stop(self) -> None:
        self._http.close()
        if self._proc is not None:
            procs.stop(self._proc, grace_s=10)
            self._proc = None

    @property
    def pid(self) -> int:
        return int(self._proc.pid)

    def requests(self) -> list[dict[str, Any]]:
        response = self._http.get("/_sandbox/requests")
        response.raise_for_status()
        return list(response.json())

    def clear(self) -> None:
        self._http.delete("/_sandbox/requests").raise_for_status()

    def wait_requests(
        self, n: int, timeout_s: float, interval_s: float = 0.25
    ) -> list[dict[str, Any]]:
        """Poll the request log until it holds ``n`` requests; return it.

        Raises:
            TimeoutError: fewer than ``n`` after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            log = [r for r in self.requests() if "data" in r]  # sendSms, not getBlacklist
            if len(log) >= n:
                return log
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox got {len(log)} of {n} requests in {timeout_s:.0f} s")
            time.sleep(interval_s)


def arrival_times(log: list[dict[str, Any]], *, processed: bool = False) -> dict[str, list[float]]:
    """CAMPAIGN_NAME (the message key) -> epoch seconds of each request the sandbox logged.

    By default the moment the request arrived: ``received_at``, stamped (to the microsecond)
    once the sandbox has read its request line and headers. With ``processed``: ``at``, stamped
    after the sandbox parsed the body and judged the numbers (its own ~1 ms of Python), before
    its simulated latency, truncated to the millisecond.
    """
    out: dict[str, list[float]] = {}
    for entry in log:
        key = (entry.get("data") or {}).get("CAMPAIGN_NAME")
        if key:
            stamp = (
                datetime.fromisoformat(entry["at"]).timestamp()
                if processed
                else float(entry["received_at"])
            )
            out.setdefault(str(key), []).append(stamp)
    return out
