"""One system, one round: enqueue-only rate, a backlog of N messages, then idle latency.

Workers are started before the backlog is enqueued and left to become idle, so that their start
(interpreter, imports) is neither in jobs/s nor in CPU per job; it is reported on its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.sandbox import Sandbox, arrival_times
from bench.systems import Message, System


BATCH = 1000
"""Messages per enqueue_many call (smsq, rq); dramatiq enqueues one at a time."""
SETTLE_S = 1.0
"""Idle time given to freshly started workers, and before the idle phase."""


@dataclass(frozen=True)
class Options:
    messages: int
    latency_ms: int
    processes: int
    enqueue_messages: int
    idle_messages: int
    idle_interval_ms: int
    timeout_s: float


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def messages(prefix: str, n: int) -> list[Message]:
    return [Message(f"{prefix}-{i:06d}", f"bench {prefix} {i}") for i in range(n)]


def enqueue_rate(system: System, prefix: str, n: int) -> float:
    """Messages/s of the system's own bulk enqueue, no worker running."""
    batch = messages(prefix, n)
    started = time.perf_counter()
    for start in range(0, n, BATCH):
        system.enqueue_batch(batch[start : start + BATCH])
    elapsed = time.perf_counter() - started
    system.redis.flushall()
    return n / elapsed


def latencies_ms(
    enqueued: dict[str, float], log: list[dict[str, Any]], *, processed: bool = False
) -> tuple[list[float], dict[str, int]]:
    """Enqueue -> the sandbox's receipt of the request (or, with ``processed``, the end of its
    parsing) per message, and counts of missing/duplicated/failed ones."""
    arrivals = arrival_times(log, processed=processed)
    lat = [(min(arrivals[k]) - t) * 1000 for k, t in enqueued.items() if k in arrivals]
    problems = {
        "missing": sum(1 for k in enqueued if k not in arrivals),
        "duplicated": sum(len(v) - 1 for k, v in arrivals.items() if k in enqueued),
        "not_100": sum(1 for e in log if e.get("status") != 100),
    }
    return lat, problems


def _wait_done(system: System, sandbox: Sandbox, n: int, deadline: float) -> list[dict[str, Any]]:
    # Poll the cheap queue length first; the sandbox's log is costly to copy while it grows.
    while system.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    return sandbox.wait_requests(n, timeout_s=max(1.0, deadline - time.monotonic()), interval_s=0.1)


def backlog(
    system: System, sandbox: Sandbox, roots: list[int], prefix: str, opts: Options
) -> dict[str, Any]:
    batch = messages(prefix, opts.messages)
    enqueued: dict[str, float] = {}
    cpu0 = procs.tree_cpu_seconds(roots)
    sandbox_cpu0 = procs.cpu_seconds(sandbox.pid)
    busy0, total0 = procs.machine_busy_seconds()
    t0 = time.time()
    for start in range(0, len(batch), BATCH):
        chunk = batch[start : start + BATCH]
        stamps = system.enqueue_batch(chunk)
        enqueued.update((m.key, stamp) for m, stamp in zip(chunk, stamps, strict=True))
    enqueue_s = time.time() - t0
    log = _wait_done(system, sandbox, opts.messages, time.monotonic() + opts.timeout_s)
    time.sleep(opts.latency_ms / 1000 + 0.2)  # the last answers are processed
    cpu = procs.tree_cpu_seconds(roots) - cpu0
    sandbox_cpu = procs.cpu_seconds(sandbox.pid) - sandbox_cpu0
    busy1, total1 = procs.machine_busy_seconds()
    lat, problems = latencies_ms(enqueued, log)
    last = max(max(v) for v in arrival_times(log).values())
    return {
        "jobs_per_s": opts.messages / (last - t0),
        "cpu_ms_per_job": cpu * 1000 / opts.messages,
        "backlog_p50_ms": percentile(lat, 50),
        "backlog_p99_ms": percentile(lat, 99),
        "backlog_enqueue_per_s": opts.messages / enqueue_s,
        "sandbox_cpu_ms_per_job": sandbox_cpu * 1000 / opts.messages,
        "machine_busy_pct": 100 * (busy1 - busy0) / (total1 - total0),
        "workers_share_pct": 100 * cpu / (busy1 - busy0),
        **problems,
    }


def idle(
    system: System, sandbox: Sandbox, roots: list[int], prefix: str, opts: Options
) -> dict[str, Any]:
    sandbox.clear()
    time.sleep(SETTLE_S)
    batch = messages(prefix, opts.idle_messages)
    enqueued: dict[str, float] = {}
    cpu0 = procs.tree_cpu_seconds(roots)
    tick = time.monotonic()
    for m in batch:
        enqueued[m.key] = time.time()
        system.enqueue_one(m)
        tick += opts.idle_interval_ms / 1000
        time.sleep(max(0.0, tick - time.monotonic()))
    log = sandbox.wait_requests(opts.idle_messages, timeout_s=opts.timeout_s, interval_s=0.1)
    time.sleep(opts.latency_ms / 1000 + 0.2)
    cpu = procs.tree_cpu_seconds(roots) - cpu0
    lat, problems = latencies_ms(enqueued, log)
    parsed, _ = latencies_ms(enqueued, log, processed=True)
    return {
        "idle_p50_ms": percentile(lat, 50),
        "idle_p99_ms": percentile(lat, 99),
        "idle_parsed_p50_ms": percentile(parsed, 50),
        "idle_parsed_p99_ms": percentile(parsed, 99),
        "idle_max_ms": max(lat),
        "idle_cpu_ms_per_job": cpu * 1000 / opts.idle_messages,
        **{f"idle_{k}": v for k, v in problems.items()},
    }


def run_system(
    system: System, *, env: dict[str, str], root: Path, logs: Path, tag: str, opts: Options
) -> dict[str, Any]:
    """Measure one system once; every process it started is stopped before returning."""
    system.redis.flushall()
    result: dict[str, Any] = {
        "enqueue_per_s": enqueue_rate(system, f"{tag}-enq", opts.enqueue_messages)
    }
    log = logs / f"{tag}.log"
    sandbox = Sandbox(latency_ms=opts.latency_ms, env=env, root=root, log=logs / "sandbox.log")
    env = {**env, **system.extra_env, "ALLMYSMS_BASE_URL": sandbox.base_url}
    workers: list[Any] = []
    sampler = None
    try:
        sandbox.start()
        spawned = time.monotonic()
        workers = [
            procs.spawn(cmd, env=env, log=log, cwd=system.cwd or root) for cmd in system.commands()
        ]
        sampler = procs.TreeSampler([w.pid for w in workers]).start()
        procs.wait_for(
            lambda: (
                system.ready(log.read_text(errors="replace"))
                or any(w.poll() is not None for w in workers)
            ),
            60,
            f"{tag} workers",
        )
        if any(w.poll() is not None for w in workers):
            raise RuntimeError(f"{tag}: a worker exited at start, see {log}")
        result["start_s"] = time.monotonic() - spawned
        time.sleep(SETTLE_S)
        roots = [w.pid for w in workers]
        result.update(backlog(system, sandbox, roots, f"{tag}-bl", opts))
        result.update(idle(system, sandbox, roots, f"{tag}-idle", opts))
        sampler.sample()
    finally:
        if sampler is not None:
            sampler.stop()
        result["exit_codes"] = [procs.stop(w) for w in workers]
        sandbox.stop()
    result["rss_worker_mib"] = sampler.peak_mib(system.worker_depth)
    result["rss_top_mib"] = sampler.peak_mib(0)
    result["rss_child_mib"] = sampler.peak_mib(1)
    result["rss_total_mib"] = sampler.peak_total_kib / 1024
    result["processes_seen"] = len(sampler.hwm_kib)
    system.redis.flushall()
    return result
