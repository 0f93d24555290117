"""Core dumps off for every smsq process: a dump of a worker holds the AllMySMS apiKey, of the
gateway the producers' api_keys, of the admin its password and session secret.

Two locks, because either alone can be undone by the system's configuration: the core file size
limit 0 (``RLIMIT_CORE``; a ``core_pattern`` that pipes to a program ignores it) and, on Linux,
the process's *dumpable* flag 0 (``PR_SET_DUMPABLE``), which also stops same-user ``ptrace`` and
``/proc/<pid>/mem`` reads. Both are inherited by forked children; a child that execs smsq sets
them again at its own start.
"""

from __future__ import annotations

import ctypes
import resource
import sys


PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
"""From <linux/prctl.h>."""
_problems: list[str] | None = None
"""What :func:`disable_core_dumps` could not do, reported once logging is configured; None
before it ran (a library user's process: nothing to report)."""


def disable_core_dumps() -> list[str]:
    """Turn core dumps off for this process and its children; never raises.

    Returns:
        What could not be done (empty when both locks are on).
    """
    problems = []
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError) as exc:
        problems.append(f"RLIMIT_CORE: {exc}")
    if sys.platform.startswith("linux"):
        try:
            if _prctl(PR_SET_DUMPABLE, 0) != 0:
                problems.append(f"prctl(PR_SET_DUMPABLE): errno {ctypes.get_errno()}")
        except (OSError, AttributeError) as exc:
            problems.append(f"prctl(PR_SET_DUMPABLE): {exc}")
    global _problems
    _problems = problems
    return problems


def state() -> dict[str, object]:
    """This process's core-dump settings as read back from the kernel."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    dumpable: int | None = None
    if sys.platform.startswith("linux"):
        try:
            dumpable = _prctl(PR_GET_DUMPABLE, 0)
        except (OSError, AttributeError):
            dumpable = None
    return {"core_limit_bytes": [soft, hard], "dumpable": dumpable}


def report_core_dumps() -> None:
    """Log the outcome of :func:`disable_core_dumps` (call once logging is configured)."""
    if _problems is None:
        return
    # Imported here: the CLI imports this module before it keeps structlog from loading greenlet.
    import structlog

    log = structlog.get_logger()
    if _problems:
        log.warning("process.core_dumps_not_disabled", problems=list(_problems), **state())
    else:
        log.debug("process.core_dumps_disabled", **state())


def _prctl(option: int, value: int) -> int:
    # The running program's own symbols include libc's (no library search, no subprocess).
    libc = ctypes.CDLL(None, use_errno=True)
    result: int = libc.prctl(option, value, 0, 0, 0)
    return result
