"""scripts/soak.py runs (the soak itself is not in CI: README "Soak"): a few messages without
chaos, on one primary and in Sentinel mode, end sent once each and the verdict says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.workers

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = 40


@pytest.mark.parametrize("mode", [[], ["--sentinel"]], ids=["primary", "sentinel"])
def test_the_soak_script_sends_every_message_once(mode: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "soak.py"),
            "--messages",
            str(MESSAGES),
            "--processes",
            "1",
            "--chaos-every",
            "0",
            "0",
            "--log",
            str(tmp_path),
            *mode,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines() if line}
    assert lines["messages accepted"].split()[-1] == str(MESSAGES)
    assert lines["states"].endswith(f"{{'sent': {MESSAGES}}}")
    assert lines["lost"].split()[-1] == "0"
    assert lines["duplicated requests"].split()[-1] == "0"
    assert lines["invariant problems"].endswith("0  []")
    # No chaos, no unknown: nothing to settle, and the line says so.
    assert lines["unknown settled"].startswith("unknown settled       0  by {}")
