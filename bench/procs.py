"""Child processes of the benchmark: start them in their own session, sample their tree from
/proc (CPU time, peak RSS), and kill every one of them on exit, Ctrl-C included."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


CLK_TCK = os.sysconf("SC_CLK_TCK")
_STARTED: list[subprocess.Popen[bytes]] = []


def spawn(
    cmd: list[str], *, env: dict[str, str], log: Path, cwd: Path, stdout: int | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session (so its whole group can be signalled) and remember it."""
    with log.open("ab") as err:
        proc = subprocess.Popen(  # noqa: S603 - our own argument lists
            cmd,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else err,
            stderr=err,
            start_new_session=True,
        )
    _STARTED.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], *, grace_s: float = 15.0) -> int | None:
    """SIGTERM the process (warm shutdown; it passes the signal on to its own children, and a
    second one would mean "stop now" to smsq and dramatiq), then SIGKILL its whole group."""
    # Descendants may have left the group (rq's work horse calls setsid()): remember them.
    family = {pid: _cmdline(pid) for pid, _ in tree([proc.pid])[1:]}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=5)
    _signal_group(proc, signal.SIGKILL)
    for pid, cmdline in family.items():
        if cmdline and _cmdline(pid) == cmdline:  # still the same process: an orphan
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    if proc in _STARTED:
        _STARTED.remove(proc)
    return proc.returncode


def stop_all() -> None:
    for proc in _STARTED.copy():
        stop(proc, grace_s=5.0)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def install_cleanup() -> None:
    """Kill every child on normal exit, on an exception, on SIGTERM and SIGHUP; Ctrl-C raises
    KeyboardInterrupt, which unwinds into the same atexit hook."""
    atexit.register(stop_all)

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    # A shell starts background jobs with SIGINT ignored; Ctrl-C / kill -INT must still work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found += [
                    int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
    return found


def tree(roots: list[int]) -> list[tuple[int, int]]:
    """(pid, depth) of every live process under ``roots``, roots at depth 0."""
    out: list[tuple[int, int]] = []
    todo = [(pid, 0) for pid in roots]
    while todo:
        pid, depth = todo.pop()
        out.append((pid, depth))
        todo += [(child, depth + 1) for child in children(pid)]
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process plus cutime + cstime of the children it has reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def tree_cpu_seconds(roots: list[int]) -> float:
    """CPU of a live tree; children reaped by their parent are in the parent's cutime/cstime."""
    return sum(cpu_seconds(pid) for pid, _ in tree(roots))


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK, sum(fields[:8]) / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class TreeSampler:
    """Samples a process tree every ``interval_s`` in a thread: peak VmHWM per process (by
    depth in the tree) and the peak of the tree's summed VmRSS."""

    roots: list[int]
    interval_s: float = 0.1
    hwm_kib: dict[int, tuple[int, int]] = field(default_factory=dict)  # pid -> (depth, kib)
    peak_total_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def sample(self) -> None:
        total = 0
        for pid, depth in tree(self.roots):
            hwm = status_kib(pid, "VmHWM")
            total += status_kib(pid, "VmRSS")
            if hwm > self.hwm_kib.get(pid, (depth, 0))[1]:
                self.hwm_kib[pid] = (depth, hwm)
        self.peak_total_kib = max(self.peak_total_kib, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def peak_mib(self, depth: int) -> float | None:
        values = [kib for d, kib in self.hwm_kib.values() if d == depth]
        return max(values) / 1024 if values else None

    def count(self, depth: int) -> int:
        return sum(1 for d, _ in self.hwm_kib.values() if d == depth)


def wait_for(
    predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
