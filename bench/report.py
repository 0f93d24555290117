"""Aggregate rounds into medians, spreads and same-round ratios, and render the markdown."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import tomllib
from pathlib import Path
from typing import Any


# (result key, label, better: "higher" | "lower" | "")
METRICS = [
    ("jobs_per_s", "jobs/s (backlog of N)", "higher"),
    ("cpu_ms_per_job", "worker CPU ms per job (backlog)", "lower"),
    ("backlog_p50_ms", "backlog enqueue→provider p50 ms", "lower"),
    ("backlog_p99_ms", "backlog enqueue→provider p99 ms", "lower"),
    ("idle_p50_ms", "idle enqueue→provider p50 ms", "lower"),
    ("idle_p99_ms", "idle enqueue→provider p99 ms", "lower"),
    ("idle_parsed_p50_ms", "idle enqueue→provider parsed it, p50 ms", "lower"),
    ("idle_parsed_p99_ms", "idle enqueue→provider parsed it, p99 ms", "lower"),
    ("idle_cpu_ms_per_job", "worker CPU ms per job (idle phase)", "lower"),
    ("rss_worker_mib", "peak RSS per worker process MiB", "lower"),
    ("rss_top_mib", "peak RSS, started process (depth 0) MiB", "lower"),
    ("rss_child_mib", "peak RSS, its children (depth 1) MiB", "lower"),
    ("rss_total_mib", "peak RSS of the whole tree (sum) MiB", "lower"),
    ("enqueue_per_s", "enqueue msgs/s, no worker running", "higher"),
    ("backlog_enqueue_per_s", "enqueue msgs/s, workers running", "higher"),
    ("start_s", "workers start → ready s", "lower"),
    ("sandbox_cpu_ms_per_job", "sandbox (provider) CPU ms per job, backlog", ""),
    ("machine_busy_pct", "whole machine CPU busy % during backlog", ""),
    ("workers_share_pct", "workers' share of that busy CPU %", ""),
]
PROBLEMS = ["missing", "duplicated", "not_100", "idle_missing", "idle_duplicated", "idle_not_100"]


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return _fmt(values[0])
    return f"{_fmt(statistics.median(values))} ({_fmt(min(values))}-{_fmt(max(values))})"


def values(rounds: list[dict[str, dict[str, Any]]], system: str, key: str) -> list[float]:
    return [
        r[system][key]
        for r in rounds
        if system in r and isinstance(r[system].get(key), int | float)
    ]


def ratios(
    rounds: list[dict[str, dict[str, Any]]], key: str, peer: str, system: str = "smsq"
) -> list[float]:
    """``system``'s ``key`` divided by ``peer``'s, one value per round that has both."""
    out = []
    for r in rounds:
        a, b = r.get(system, {}).get(key), r.get(peer, {}).get(key)
        if isinstance(a, int | float) and isinstance(b, int | float) and b:
            out.append(a / b)
    return out


def metrics_table(rounds: list[dict[str, dict[str, Any]]], systems: list[str]) -> str:
    pairs: list[tuple[str, str]] = [
        ("smsq", p) for p in ("dramatiq", "rq") if p in systems and "smsq" in systems
    ]
    if {"smsq", "smsq-wait1"} <= set(systems):
        pairs.append(("smsq-wait1", "smsq"))  # what the durability barrier costs
    if {"smsq", "smsq-base"} <= set(systems):
        pairs.append(("smsq", "smsq-base"))  # this checkout against --baseline
    head = ["metric", "better", *systems, *(f"{a}/{b}" for a, b in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, better in METRICS:
        cells = [_cell(values(rounds, s, key)) for s in systems]
        cells += [_cell(ratios(rounds, key, b, a)) if better else "" for a, b in pairs]
        lines.append(f"| {label} | {better} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# (target, what, goal text, smsq metric or "ratio" for T1, bound, "min" or "max", use max over
# rounds instead of the median)
TARGETS = [
    ("T1", "smsq jobs/s ÷ dramatiq jobs/s, same round", "≥ 1.5", "ratio", 1.5, "min", False),
    ("T3", "smsq enqueue_many msgs/s", "≥ 20,000", "enqueue_per_s", 20_000, "min", False),
    ("T4", "smsq idle enqueue→provider p50 ms", "≤ 5", "idle_p50_ms", 5, "max", False),
    ("T4", "smsq idle enqueue→provider p99 ms", "≤ 20", "idle_p99_ms", 20, "max", False),
    (
        "T5",
        "smsq peak RSS per worker process MiB (max over rounds)",
        "≤ 45",
        "rss_worker_mib",
        45,
        "max",
        True,
    ),
]


def targets_table(rounds: list[dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| target | measure | goal | measured | rounds meeting it | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, what, goal, key, bound, kind, worst in TARGETS:
        per_round = (
            ratios(rounds, "jobs_per_s", "dramatiq")
            if key == "ratio"
            else values(rounds, "smsq", key)
        )

        def ok(v: float, bound: float = bound, kind: str = kind) -> bool:
            return v >= bound if kind == "min" else v <= bound

        value = (max(per_round) if worst else statistics.median(per_round)) if per_round else None
        met = f"{sum(1 for v in per_round if ok(v))}/{len(per_round)}"
        verdict = "n/a" if value is None else ("met" if ok(value) else "not met")
        lines.append(f"| {name} | {what} | {goal} | {_fmt(value)} | {met} | {verdict} |")
    return "\n".join(lines)


def problems_table(rounds: list[dict[str, dict[str, Any]]], systems: list[str]) -> str:
    lines = [
        "| round | system | order | " + " | ".join(PROBLEMS) + " | worker exit codes |",
        "|" + "---|" * (len(PROBLEMS) + 4),
    ]
    for i, r in enumerate(rounds, 1):
        for s in systems:
            if s in r:
                res = r[s]
                cells = [str(res.get(k, "n/a")) for k in PROBLEMS]
                lines.append(
                    f"| {i} | {s} | {res.get('order', '?')} | "
                    + " | ".join(cells)
                    + f" | {res.get('exit_codes', res.get('error', 'n/a'))} |"
                )
    return "\n".join(lines)


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        return subprocess.run(  # noqa: S603
            cmd,
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def checkout(root: Path) -> str:
    """The commit, flagged when tracked files differ from it (others may edit while we run)."""
    commit = _run(["git", "rev-parse", "--short", "HEAD"], root)
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], root)
    return commit + (" + uncommitted changes to tracked files" if dirty else "")


def environment(root: Path, checkout_at_start: str) -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "?",
    )
    versions = []
    for name in ("smsq", "redis", "rq", "dramatiq", "httpx", "tenacity", "structlog"):
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            if name == "smsq":  # run from the checkout, not installed
                project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
                versions.append(f"smsq {project['version']} (checkout)")
            else:
                versions.append(f"{name} (not installed)")
    redis_server = _run([shutil.which("redis-server") or "redis-server", "--version"])
    at_end = checkout(root)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "\n".join(
        [
            f"- machine: {len(os.sched_getaffinity(0))} CPUs usable (nproc), {model}, "
            f"{mem} memory; load average at the end {load}",
            f"- {platform.python_implementation()} {platform.python_version()}, "
            f"{redis_server.split(' sha=')[0]}",
            f"- packages: {', '.join(versions)}",
            f"- checkout: {checkout_at_start}"
            + (
                ""
                if at_end == checkout_at_start
                else f"; CHANGED during the run, at the end: {at_end}"
            ),
        ]
    )
