"""``smsq demo``, the Quick start's first command, runs the whole loop on this machine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.processes import ROOT


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
