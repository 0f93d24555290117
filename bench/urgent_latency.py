"""An urgent message's enqueue→provider latency under a saturated bulk lane, against no bulk.

Starts a private ``redis-server``, the sandbox provider in its own process and ``smsq worker
--processes P`` with the global rate limit on (127.0.0.1 only). First the baseline: one urgent
message at a time, the lanes otherwise empty and the bucket full. Then, ``--rounds`` times,
``--bulk`` bulk messages (their turns booked well ahead: ``bulk / rate`` seconds) and, once
the sandbox has seen the first few of them, one urgent message. Latency = the sandbox's
``received_at`` of the message - the start of its enqueue call. Prints the medians, their
ratio, the loaded latency in turns of the limit (latency x rate: one turn is ``1 / rate`` s)
and how many bulk messages were still waiting and posted after the urgent one.

``--source DIR`` runs the workers from another source tree (put first on PYTHONPATH), e.g. the
code before urgent turns went ahead of bulk ones::

    git -C /work/main worktree add /tmp/urgent-before main     # or: git archive main | tar -x
    .venv/bin/python bench/urgent_latency.py --source /tmp/urgent-before   # before
    .venv/bin/python bench/urgent_latency.py                               # after

Not a CI test: figures depend on the machine. Every wait is bounded in time, and the processes
it starts are stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis import Redis

from bench import procs
from bench.sandbox import Sandbox
from producers.enqueue import Producer
from worker.dev.redis_server import RedisServer


ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0


def module_file(source: str | None, module: str) -> str:
    """Where the workers import ``module`` from (checks ``--source`` is used)."""
    found = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", f"import {module} as m; print(m.__file__)"],
        cwd=source or ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (source, str(ROOT)) if p)},
        capture_output=True,
        text=True,
        check=True,
        timeout=START_TIMEOUT_S,
    )
    return found.stdout.strip()


def posted(sandbox: Sandbox) -> dict[str, float]:
    """Campaign name (= message key) → the sandbox's ``received_at``."""
    return {
        r["data"]["CAMPAIGN_NAME"]: float(r["received_at"])
        for r in sandbox.requests()
        if r.get("data") and r["data"].get("CAMPAIGN_NAME")
    }


def message(key: str, lane: str) -> dict[str, Any]:
    return {"key": key, "text": "Bonjour", "to": ["0612345678"], "lane": lane, "campaign": key}


def urgent_latency(producer: Producer, sandbox: Sandbox, key: str, timeout_s: float) -> float:
    started = time.time()
    producer.enqueue(message(key, "urgent"))
    procs.wait_for(lambda: key in posted(sandbox), timeout_s, f"{key} posted")
    return posted(sandbox)[key] - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", help="run the workers from this source tree")
    parser.add_argument("--rate", type=float, default=2.0, help="segments per second")
    parser.add_argument("--burst", type=int, default=2)
    parser.add_argument("--bulk", type=int, default=20, help="bulk messages per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=5, help="urgent messages alone")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--slots", type=int, default=12, help="SMSQ_SEND_SLOTS per process")
    parser.add_argument("--latency-ms", type=int, default=20, help="the sandbox's latency")
    args = parser.parse_args()

    procs.install_cleanup()
    booked_s = args.bulk / args.rate
    timeout_s = booked_s + 30
    redis = RedisServer().start()
    work = Path(tempfile.mkdtemp(prefix="smsq-urgent-"))
    path = os.pathsep.join(p for p in (args.source, str(ROOT)) if p)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SMSQ_", "ALLMYSMS_"))},
        "REDIS_URL": redis.url,
        "PYTHONPATH": path,
        "SMSQ_LOG_LEVEL": "WARNING",
        "SMSQ_RATE_LIMIT_SEGMENTS_PER_S": repr(args.rate),
        "SMSQ_RATE_LIMIT_BURST_SEGMENTS": str(args.burst),
        "SMSQ_SEND_SLOTS": str(args.slots),
        "SMSQ_SEND_MAX_WAIT_S": repr(booked_s + 10),
    }
    sandbox = Sandbox(latency_ms=args.latency_ms, env=env, root=ROOT, log=work / "sandbox.log")
    workers = None
    try:
        sandbox.start()
        env["ALLMYSMS_BASE_URL"] = sandbox.base_url
        env["ALLMYSMS_LOGIN"], env["ALLMYSMS_API_KEY"] = "demo", "sandbox-key"
        workers = procs.spawn(
            [sys.executable, "-m", "worker", "worker", "--processes", str(args.processes)],
            env=env,
            log=work / "workers.log",
            cwd=Path(args.source or ROOT),
        )
        client = Redis.from_url(redis.url)
        producer = Producer(client)
        procs.wait_for(
            lambda: client.scard("rq:workers") >= args.processes, START_TIMEOUT_S, "the workers"
        )
        time.sleep(1.0)
        urgent_latency(producer, sandbox, "warm-up", timeout_s)

        alone = []
        for n in range(args.baseline):
            time.sleep(args.burst / args.rate + 0.2)  # the bucket full again
            alone.append(urgent_latency(producer, sandbox, f"alone-{n}", timeout_s))

        loaded, after = [], []
        for r in range(args.rounds):
            time.sleep(args.burst / args.rate + 0.2)
            bulk = [f"bulk-{r}-{n}" for n in range(args.bulk)]
            producer.enqueue_many([message(key, "bulk") for key in bulk])
            procs.wait_for(
                lambda bulk=bulk: sum(k in posted(sandbox) for k in bulk) >= args.burst + 1,
                timeout_s,
                "the bulk lane under way",
            )
            loaded.append(urgent_latency(producer, sandbox, f"urgent-{r}", timeout_s))
            procs.wait_for(
                lambda bulk=bulk: all(k in posted(sandbox) for k in bulk), timeout_s, "bulk sent"
            )
            times = posted(sandbox)
            after.append(sum(times[k] > times[f"urgent-{r}"] for k in bulk))

        alone_ms = statistics.median(alone) * 1000
        loaded_ms = statistics.median(loaded) * 1000
        lines = [
            f"source: {args.source or ROOT} "
            f"(limiter {module_file(args.source, 'worker.send.ratelimit')})",
            f"limit: {args.rate:g} segments/s, burst {args.burst}; {args.processes} worker "
            f"processes x {args.slots} slots; sandbox latency {args.latency_ms} ms",
            f"urgent alone:           median {alone_ms:8.1f} ms "
            f"({', '.join(f'{x * 1000:.0f}' for x in alone)})",
            f"urgent behind {args.bulk} bulk:  median {loaded_ms:8.1f} ms "
            f"({', '.join(f'{x * 1000:.0f}' for x in loaded)})",
            f"ratio: {loaded_ms / alone_ms:.1f}x the no-bulk baseline; "
            f"{statistics.median(loaded) * args.rate:.2f} turns of {1000 / args.rate:.0f} ms",
            f"bulk messages posted after the urgent one: {after} of {args.bulk}",
        ]
        print("\n".join(lines))  # noqa: T201
    finally:
        if workers is not None:
            procs.stop(workers)
        sandbox.stop()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
