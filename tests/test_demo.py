"""``smsq demo``, the Quick start's first command, runs the whole loop on this machine."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis

from producers import keys
from tests.helpers.processes import ROOT
from worker.dev.demo import NEXT_STEPS
from worker.dev.redis_server import RedisServer


@pytest.mark.workers
def test_demo_runs_the_whole_loop() -> None:
    """Python, Redis-intake and gateway producers; one real worker; receipts back through the
    gateway's webhook; signed callbacks to the gateway producer."""
    result = subprocess.run(
        [sys.executable, "-m", "worker", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    outcomes = {
        line.split()[0]: line.split(None, 2)[1:]
        for line in result.stdout.splitlines()
        if line.startswith("   ") and len(line.split()) > 2
    }
    assert outcomes["welcome-2026-11"] == [
        "sent",
        "provider 100, 3 smsId(s), 3 SMS billed, delivery 3 delivered",
    ]
    assert outcomes["reminder-appointment-7"][0] == "scheduled"
    assert outcomes["stop-listed-4"][0] == "partial"
    assert outcomes["gw:shop:order-4711-shipped"] == [
        "sent",
        "provider 100, 1 smsId(s), 1 SMS billed, delivery 1 delivered",
    ]
    assert "the sandbox received 7 sendSms request(s); dead letters: 0" in result.stdout
    events = [
        line.split() for line in result.stdout.splitlines() if line.strip().startswith("message.")
    ]
    assert events == [
        ["message.final", "sent", "HMAC-SHA256", "verified"],
        ["message.receipt", "transmitted", "HMAC-SHA256", "verified"],
        ["message.receipt", "delivered", "HMAC-SHA256", "verified"],
    ]


def test_the_demos_first_next_step_works_as_printed(
    redis: Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Step 1 of the demo's "Next steps", run by bash as printed (the sandbox on a free port,
    against the suite's Redis): the message ends sent."""
    lines = NEXT_STEPS.splitlines()
    start = lines.index("  1. Against your own Redis, still without AllMySMS:")
    commands = [line.strip() for line in lines[start + 1 : start + 6]]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "smsq").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m worker "$@"\n')
    (bin_dir / "smsq").chmod(0o755)
    printed = [c.replace("smsq sandbox &", f"smsq sandbox --port {port} &") for c in commands]
    printed = [c.replace("8025", port) for c in printed]
    script = "\n".join(
        [
            *printed[:3],
            f"for _ in $(seq 100); do (: </dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; "
            "sleep 0.1; done",
            printed[3],
            "for _ in $(seq 100); do smsq status hello-1 | grep -q '^state: *sent' && break; "
            "sleep 0.2; done",
            printed[4],
            "kill $(jobs -p)",
        ]
    )
    done = subprocess.run(
        ["bash", "-c", script],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": redis_server.url,
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )

    assert commands[1:3] == [
        "smsq sandbox &",
        "ALLMYSMS_BASE_URL=http://127.0.0.1:8025/http/9.0 smsq worker &",
    ]
    assert "state:      sent" in done.stdout.splitlines(), done.stdout + done.stderr
    assert redis.hget("smsq:msg:" + keys.message_id("hello-1"), "state") == b"sent"
