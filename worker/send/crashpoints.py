"""Named points where a worker can be made to die on purpose, for the crash test suite.

``SMSQ_CRASH_AT=after_claim`` makes the process ``os._exit(137)`` there, like a SIGKILL: no
finally block, no atexit, no flush. Unset (the default), each point is one string comparison.
"""

from __future__ import annotations

import os


CRASH_EXIT_CODE = 137
_armed = ""


def arm(point: str) -> None:
    """Arm one crash point for this process (from ``Settings.crash_at``)."""
    global _armed
    _armed = point


def crash_point(point: str) -> None:
    if _armed and point == _armed:
        os._exit(CRASH_EXIT_CODE)
