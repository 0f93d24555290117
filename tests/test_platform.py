"""Heroku-style platforms: the Procfile's ``web`` process is the gateway, on ``$PORT``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers.processes import ROOT, Workers
from worker.dev.redis_server import free_port


PRODUCERS = json.dumps([{"login": "shop", "api_key": "shop-key-7c2e9a41b0d3f865"}])


def test_the_procfile_web_process_is_the_gateway_and_it_listens_on_port(
    workers: Workers, tmp_path: Path
) -> None:
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert procfile["web"] == "smsq gateway --host 0.0.0.0"
    port = free_port()
    log = (tmp_path / "gateway.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "gateway", "--host", "127.0.0.1"],
        env=workers.env(PORT=str(port), SMSQ_PRODUCERS=PRODUCERS),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
                assert time.monotonic() < deadline, "the gateway did not listen on $PORT"
                time.sleep(0.2)
        assert answer.status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


def test_a_bad_port_names_the_variable(workers: Workers) -> None:
    done = workers.smsq("gateway", PORT="http", SMSQ_PRODUCERS=PRODUCERS)

    assert done.returncode != 0
    assert "PORT: must be a whole number" in done.stderr
