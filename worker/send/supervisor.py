"""``smsq worker --processes N``: run N worker processes and restart any that dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from types import FrameType

import structlog


log = structlog.get_logger()

RESTART_DELAY_S = 1.0
"""Pause before restarting a crashed worker, so a crash loop does not spin."""


def supervise(processes: int, *, burst: bool, lanes: str) -> int:
    """Keep ``processes`` workers running until SIGTERM/SIGINT (or, in burst mode, until done).

    A worker that exits with a failure, or is killed, is restarted; in burst mode a worker that
    exits cleanly has finished and is not restarted. Signals are passed on for a warm shutdown.
    """
    command = [sys.executable, "-m", "worker", "worker", "--processes", "1", "--lanes", lanes]
    if burst:
        command.append("--burst")
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for child in list(children.values()):
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(processes):
        children[slot] = subprocess.Popen(command)  # noqa: S603 - our own interpreter
    log.info("sms.supervisor.started", processes=processes)
    failures = 0
    while children:
        time.sleep(0.2)
        for slot, child in list(children.items()):
            code = child.poll()
            if code is None:
                continue
            del children[slot]
            if stopping.is_set() or (burst and code == 0):
                continue
            failures += 1
            log.warning("sms.supervisor.restarting", slot=slot, exit_code=code)
            time.sleep(RESTART_DELAY_S)
            if stopping.is_set():  # the stop signal came during the delay: the slot stays empty
                continue
            child = subprocess.Popen(command)  # noqa: S603
            children[slot] = child
            if stopping.is_set():  # ... or while the child started, before the handler saw it
                child.send_signal(signal.SIGTERM)
    log.info("sms.supervisor.stopped", restarts=failures)
    return 0
