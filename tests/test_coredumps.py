"""Core dumps are off in real smsq processes: a dump of a worker would hold the apiKey."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.helpers.processes import Workers, wait_for


def core_limit(pid: int) -> str:
    """The "Max core file size" line of /proc/<pid>/limits, spaces collapsed."""
    text = Path(f"/proc/{pid}/limits").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("Max core file size"))
    return re.sub(r"\s+", " ", line).strip()


def test_a_running_worker_cannot_dump_core(workers: Workers) -> None:
    """The kernel's view of a live ``smsq worker``: core size limit 0/0, not dumpable."""
    proc = workers.start()
    log = workers.log_dir / "worker-0.log"
    events: list[dict[str, object]] = []

    def reported() -> bool:
        events[:] = [
            json.loads(line)
            for line in log.read_text(encoding="utf-8").splitlines()
            if '"process.core_dumps' in line
        ]
        return bool(events)

    wait_for(reported, what="the worker's core-dump report")

    assert proc.poll() is None
    assert core_limit(proc.pid) == "Max core file size 0 0 bytes"
    assert [(e["event"], e["core_limit_bytes"], e["dumpable"]) for e in events] == [
        ("process.core_dumps_disabled", [0, 0], 0)
    ]
