"""T2: a 100,000-recipient campaign file, from ``smsq enqueue --file`` to the last AllMySMS
request accepted by the sandbox.

    .venv/bin/python bench/campaign.py [--recipients 100000] [--latency-ms 50] [--processes 2]

Starts its own redis-server, a sandbox process with the given latency and idle
``smsq worker --processes N``, writes a CSV of distinct mobile numbers with one parameter each,
then times ``smsq enqueue --file numbers.csv --text ... --key ...`` until the sandbox has
answered every part. It checks that every number reached the sandbox exactly once.

The same run also times the baseline the issue describes, the way rq users send a campaign
without smsq: one single-recipient message per line (``--baseline-recipients`` of them, since
at one request per recipient 100,000 would take minutes), and reports recipients per second for
both, so the ratio does not depend on how busy the shared machine is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from redis import Redis


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procs
from bench.sandbox import Sandbox
from worker.dev.redis_server import RedisServer


TARGET_S = 10.0
LOGIN, API_KEY = "bench", "bench-api-key-0123456789"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--baseline-recipients", type=int, default=2_000)
    p.add_argument("--latency-ms", type=int, default=50)
    p.add_argument("--processes", type=int, default=2)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="smsq-campaign-"))
    redis_server = RedisServer().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSQ_", "ALLMYSMS_"))}
    env.update({"ALLMYSMS_LOGIN": LOGIN, "ALLMYSMS_API_KEY": API_KEY, "PYTHONPATH": str(ROOT)})
    sandbox = Sandbox(latency_ms=args.latency_ms, env=env, root=ROOT, log=work / "sandbox.log")
    sandbox.start()
    env.update(
        {
            "REDIS_URL": redis_server.url,
            "ALLMYSMS_LOGIN": LOGIN,
            "ALLMYSMS_API_KEY": API_KEY,
            "ALLMYSMS_BASE_URL": sandbox.base_url,
            "SMSQ_LOG_LEVEL": "WARNING",
            "SMSQ_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        }
    )
    redis = Redis.from_url(redis_server.url)
    workers = procs.spawn(
        [sys.executable, "-m", "worker", "worker", "--processes", str(args.processes)],
        env=env,
        log=work / "workers.log",
        cwd=ROOT,
    )
    try:
        time.sleep(2.0)  # workers up and idle
        campaign = run_campaign(
            work, env, sandbox, redis, args.recipients, "campaign", as_campaign=True
        )
        sandbox.clear()
        baseline = run_campaign(
            work, env, sandbox, redis, args.baseline_recipients, "single", as_campaign=False
        )
    finally:
        procs.stop(workers)
        sandbox.stop()
        redis_server.stop()
    ratio = campaign["recipients_per_s"] / baseline["recipients_per_s"]
    print(
        json.dumps(
            {
                "campaign": campaign,
                "baseline_single_messages": baseline,
                "ratio_recipients_per_s": round(ratio, 1),
            },
            indent=2,
        )
    )
    verdict = "met" if campaign["seconds"] <= TARGET_S else "not met"
    print(
        f"T2: {args.recipients:,} recipients accepted by the sandbox in "
        f"{campaign['seconds']:.2f} s (target <= {TARGET_S:.0f} s: {verdict}); "
        f"{campaign['recipients_per_s']:,.0f} recipients/s = {ratio:.1f} x one message per "
        f"recipient ({baseline['recipients_per_s']:,.0f}/s)"
    )
    return 0 if campaign["exactly_once"] else 1


def run_campaign(
    work: Path,
    env: dict[str, str],
    sandbox: Sandbox,
    redis: Redis,
    recipients: int,
    key: str,
    *,
    as_campaign: bool,
) -> dict[str, object]:
    numbers = [f"06{n:08d}" for n in range(40_000_000, 40_000_000 + recipients)]
    file = work / f"{key}.txt"
    if as_campaign:
        file.write_text("".join(f"{n},{i}\n" for i, n in enumerate(numbers)), encoding="utf-8")
        command = [
            "enqueue",
            "--file",
            str(file),
            "--text",
            "Offre #param_1#",
            "--key",
            key,
            "--lane",
            "bulk",
        ]
    else:
        file.write_text(
            "".join(
                json.dumps({"key": f"{key}-{i}", "text": f"Offre {i}", "to": [n], "lane": "bulk"})
                + "\n"
                for i, n in enumerate(numbers)
            ),
            encoding="utf-8",
        )
        command = ["enqueue", "--file", str(file)]
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", "worker", *command],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    enqueued_s = time.time() - started
    deadline = time.monotonic() + 600
    while redis.llen("rq:queue:smsq-bulk") or redis.llen("rq:queue:smsq-bulk:intermediate"):
        if time.monotonic() > deadline:
            raise TimeoutError("the campaign did not drain in 600 s")
        time.sleep(0.05)
    log = sandbox.requests()
    last = max(datetime.fromisoformat(e["at"]).timestamp() for e in log)
    seconds = last + sandbox.latency_ms / 1000 - started
    sent = Counter(sms["MOBILEPHONE"] for e in log if "data" in e for sms in e["data"]["SMS"])
    return {
        "recipients": recipients,
        "provider_requests": len(log),
        "enqueue_s": round(enqueued_s, 2),
        "seconds": round(seconds, 2),
        "recipients_per_s": round(recipients / seconds, 1),
        "exactly_once": len(sent) == recipients and set(sent.values()) == {1},
    }


if __name__ == "__main__":
    raise SystemExit(main())
