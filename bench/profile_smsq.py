"""Where one smsq worker process spends its CPU: cProfile (CPU-time timer) of
``smsq worker --burst`` draining a backlog, against a private redis-server and a sandbox in its
own process.

    .venv/bin/python bench/profile_smsq.py [--messages 500] [--latency-ms 0] [--top 30]
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402

from bench import procs  # noqa: E402
from bench.measure import messages  # noqa: E402
from bench.run import child_env  # noqa: E402
from bench.sandbox import Sandbox  # noqa: E402
from bench.systems import Smsq  # noqa: E402
from worker.dev.redis_server import RedisServer  # noqa: E402


PROFILED_WORKER = """
import cProfile, runpy, sys, time
out, sys.argv = sys.argv[1], ["smsq", "worker", "--burst"]
profile = cProfile.Profile(time.process_time)  # CPU time, not wall time spent waiting
try:
    profile.runcall(runpy.run_module, "worker", run_name="__main__")
except SystemExit:
    pass
finally:
    profile.dump_stats(out)
"""


def print_commands(commands: dict[str, dict[str, float]], n: int) -> None:
    """Redis commands the worker sent per message, and redis-server's time for them."""
    rows = sorted(
        (
            (name.removeprefix("cmdstat_"), v["calls"] / n, v["usec"] / n)
            for name, v in commands.items()
        ),
        key=lambda r: -r[1],
    )
    total_calls = sum(r[1] for r in rows)
    total_us = sum(r[2] for r in rows)
    print(  # noqa: T201
        f"redis commands per message: {total_calls:.1f}, "
        f"redis-server time per message: {total_us:.0f} us"
    )
    for name, calls, usec in rows:
        print(f"  {name:<24} {calls:6.2f} calls  {usec:7.1f} us")  # noqa: T201


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=500)
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="smsq-profile-"))
    out = logs / "worker.prof"
    procs.install_cleanup()
    with RedisServer() as server:
        env = child_env(server.url)
        sandbox = Sandbox(
            latency_ms=args.latency_ms, env=env, root=ROOT, log=logs / "sandbox.log"
        ).start()
        try:
            redis = Redis.from_url(server.url)
            Smsq(redis, 1).enqueue_batch(messages("prof", args.messages))
            redis.config_resetstat()
            worker = procs.spawn(
                [sys.executable, "-c", PROFILED_WORKER, str(out)],
                env={**env, "ALLMYSMS_BASE_URL": sandbox.base_url},
                log=logs / "worker.log",
                cwd=ROOT,
            )
            worker.wait(timeout=600)
            sent = sum(1 for r in sandbox.requests() if "data" in r)
            commands = redis.info("commandstats")
        finally:
            procs.stop_all()
            sandbox.stop()
    print(f"{sent} of {args.messages} messages reached the sandbox; profile: {out}")  # noqa: T201
    print_commands(commands, args.messages)
    stats = pstats.Stats(str(out))
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
