"""Benchmark smsq against a plain rq worker and dramatiq on the same messages (bench/README.md).

.venv/bin/python bench/run.py [--messages 2000] [--latency-ms 50] [--rounds 3]
                              [--processes 2] [--out bench/results/<date>.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402

from bench import procs, report  # noqa: E402
from bench.measure import Options, run_system  # noqa: E402
from bench.systems import SYSTEMS, SmsqBaseline  # noqa: E402
from worker.dev.redis_server import RedisServer  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=2000, help="backlog size per system/round")
    p.add_argument("--latency-ms", type=int, default=50, help="sandbox provider latency")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--processes", type=int, default=2, help="smsq and rq worker processes")
    p.add_argument("--systems", default="smsq,rq,dramatiq", help="comma-separated subset")
    p.add_argument(
        "--enqueue-messages",
        type=int,
        default=10_000,
        help="messages for the enqueue-only measurement (T3)",
    )
    p.add_argument("--idle-messages", type=int, default=200)
    p.add_argument("--idle-interval-ms", type=int, default=50)
    p.add_argument("--timeout-s", type=float, default=300, help="bound of each phase")
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a checkout of an earlier commit whose workers run as system smsq-base",
    )
    p.add_argument("--out", type=Path, default=None)
    return p.parse_args()


def child_env(redis_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SMSQ_", "ALLMYSMS_", "dramatiq_")) and "proxy" not in k.lower()
    }
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_url,
        "NO_PROXY": "*",
        "ALLMYSMS_LOGIN": "bench",
        "ALLMYSMS_API_KEY": "bench-key-1234",
        "SMSQ_LOG_LEVEL": "WARNING",
        "SMSQ_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }


def wait_for_replicas(server: RedisServer, count: int) -> None:
    """Return once ``count`` replicas are online on ``server`` (60 s at most)."""
    client = Redis(port=server.port, decode_responses=True)
    try:
        procs.wait_for(
            lambda: int(client.info("replication")["connected_slaves"]) >= count,
            60,
            f"{count} replica(s) online",
        )
    finally:
        client.close()


def render(
    args: argparse.Namespace,
    systems: list[str],
    rounds: list[dict[str, Any]],
    elapsed_s: float,
    logs: Path,
    checkout: str,
) -> str:
    return (
        "\n\n".join(
            [
                f"# smsq benchmark, {datetime.now(UTC).astimezone():%Y-%m-%d %H:%M %Z}",
                f"`{shlex.join([sys.executable.replace(str(ROOT) + '/', ''), *sys.argv])}` — "
                f"{len(rounds)} interleaved round(s) of {args.messages} single-recipient "
                f"messages per system, provider latency {args.latency_ms} ms, "
                f"{args.processes} smsq/rq worker process(es), dramatiq 1 process x 8 threads; "
                f"took {elapsed_s / 60:.1f} min. "
                "Cells: median (min-max) over rounds; ratios are computed within each round, then "
                "summarised the same way. The machine is shared and noisy: read ratios, "
                "not absolutes.",
                "## Targets\n\n" + report.targets_table(rounds),
                "## Metrics\n\n" + report.metrics_table(rounds, systems),
                "## Correctness per run\n\n" + report.problems_table(rounds, systems),
                "## Environment\n\n" + report.environment(ROOT, checkout),
                "See bench/README.md for what each number measures. Logs of this run: " + str(logs),
            ]
        )
        + "\n"
    )


def main() -> int:
    args = parse_args()
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        sys.exit(f"unknown system(s): {', '.join(sorted(unknown))}")
    if args.baseline is not None:
        SmsqBaseline.tree = args.baseline.resolve()
    opts = Options(
        messages=args.messages,
        latency_ms=args.latency_ms,
        processes=args.processes,
        enqueue_messages=args.enqueue_messages,
        idle_messages=args.idle_messages,
        idle_interval_ms=args.idle_interval_ms,
        timeout_s=args.timeout_s,
    )
    stamp = datetime.now(UTC).astimezone()
    out = args.out or ROOT / "bench" / "results" / f"{stamp:%Y-%m-%d-%H%M}.md"
    logs = Path(tempfile.mkdtemp(prefix="smsq-bench-"))
    procs.install_cleanup()
    started = time.monotonic()
    checkout = report.checkout(ROOT)
    rounds: list[dict[str, Any]] = []
    redis_server = RedisServer().start()
    replicas = [
        RedisServer(extra_args=["--replicaof", "127.0.0.1", str(redis_server.port)]).start()
        for _ in range(max(SYSTEMS[name].replicas for name in systems))
    ]
    try:
        wait_for_replicas(redis_server, len(replicas))
        env = child_env(redis_server.url)
        os.environ["REDIS_URL"] = redis_server.url  # the dramatiq peer's broker, in this process
        redis = Redis.from_url(redis_server.url)
        for n in range(args.rounds):
            order = systems[n % len(systems) :] + systems[: n % len(systems)]
            results: dict[str, Any] = {}
            for position, name in enumerate(order, 1):
                print(f"round {n + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)  # noqa: T201
                system = SYSTEMS[name](redis, args.processes)
                try:
                    results[name] = run_system(
                        system, env=env, root=ROOT, logs=logs, tag=f"r{n + 1}-{name}", opts=opts
                    )
                except (RuntimeError, TimeoutError, OSError) as exc:
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                    redis.flushall()
                results[name]["order"] = position
                print(f"  {json.dumps(results[name], default=str)}", file=sys.stderr, flush=True)  # noqa: T201
            rounds.append(results)
    finally:
        procs.stop_all()
        for replica in replicas:
            replica.stop()
        redis_server.stop()
    text = render(args, systems, rounds, time.monotonic() - started, logs, checkout)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rounds": rounds}, indent=1)
    )
    print(text)  # noqa: T201
    print(f"written to {out} (raw numbers: {out.with_suffix('.json')})", file=sys.stderr)  # noqa: T201
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: every process this run started has been stopped", file=sys.stderr)  # noqa: T201
        sys.exit(130)
