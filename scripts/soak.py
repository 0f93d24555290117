"""Soak test (not in CI): 100,000 messages through 4 workers while workers, whole worker groups
and redis-server are killed with SIGKILL at random. Prints lost / duplicated / unknown counts,
and how many ``unknown`` messages were settled automatically, and how (receipt / reply / lookup).

    .venv/bin/python scripts/soak.py [--messages 100000] [--processes 4] [--seed 1] [--sentinel]

Everything runs on loopback: a private redis-server (appendonly yes, appendfsync always, as
deploy/redis.conf), ``smsq sandbox`` in its own process pushing its receipts to ``smsq gateway``'s
webhooks, and ``smsq worker --processes N`` supervisors with the polling fallback on
(``SMSQ_POLL_INTERVAL_S=2``). With ``--sentinel``: one primary, one replica and three sentinels
(worker/dev/sentinel.py), every process in Sentinel mode with the durability barrier (WAIT 1),
and the Redis kills become switches of the primary: a plain ``SENTINEL FAILOVER``, or ``kill -9``
of the primary and its restart from its AOF once the sentinels have replaced it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from redis import Redis


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from producers.config import ProducerSettings  # noqa: E402
from producers.connection import connect  # noqa: E402
from producers.enqueue import Producer  # noqa: E402
from producers.errors import RedisUnavailableError  # noqa: E402
from producers.states import TERMINAL_STATES, State  # noqa: E402
from producers.store import MessageStore  # noqa: E402
from tests.helpers.invariants import check  # noqa: E402
from worker.dev.redis_server import RedisServer, free_port  # noqa: E402
from worker.dev.sentinel import SentinelTopology  # noqa: E402


BATCH = 1000
DEADLINE_S = 3600
SETTLE_WAIT_S = 60
"""Longest wait after the quiet period for the sandbox's last receipts and the polling
fallback's lookups of unmatched ones."""
SENTINEL_DOWN_AFTER_MS = 1000
"""The sentinels' down-after in the --sentinel soak; workers need a dead-after 10 s above it."""


class Redises:
    """The soak's Redis: one primary, or (``sentinel=True``) a Sentinel topology; kill() is one
    chaos step and names what it did."""

    def __init__(self, *, sentinel: bool, rng: random.Random) -> None:
        self._rng = rng
        self.topology: SentinelTopology | None = None
        self.server: RedisServer | None = None
        if sentinel:
            self.topology = SentinelTopology(down_after_ms=SENTINEL_DOWN_AFTER_MS).start()
            self.env = {
                "REDIS_URL": "redis://127.0.0.1:6379/0",  # host unused in Sentinel mode
                "SMSQ_REDIS_SENTINELS": self.topology.sentinels_env,
                "SMSQ_REDIS_SENTINEL_MASTER": self.topology.master_name,
                "SMSQ_WORKER_DEAD_AFTER_S": str(SENTINEL_DOWN_AFTER_MS // 1000 + 11),
            }
        else:
            self.server = RedisServer(appendonly=True).start()
            self.env = {"REDIS_URL": self.server.url, "SMSQ_WORKER_DEAD_AFTER_S": "3"}
        self.settings = ProducerSettings.from_env(self.env)

    def client(self) -> Redis:
        return connect(self.settings, socket_timeout_s=5)

    def kill(self) -> str:
        if self.topology is not None:
            try:
                if self._rng.random() < 0.5:
                    self.topology.failover()
                    return "sentinel failover"
                dead = self.topology.kill_primary()
                self.topology.restart(dead)
            except TimeoutError as exc:
                print(f"  topology: {exc}", flush=True)
                return "switch (timed out)"
            return "primary kill -9"
        assert self.server is not None
        self.server.kill()
        time.sleep(self._rng.uniform(1, 3))
        self.server = RedisServer(
            port=self.server.port, directory=self.server.directory, appendonly=True
        ).start()
        return "redis-server"

    def stop(self) -> None:
        if self.topology is not None:
            self.topology.stop()
        if self.server is not None:
            self.server.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log", default="/tmp/smsq-soak")
    parser.add_argument(
        "--chaos-every",
        type=float,
        nargs=2,
        default=(4.0, 12.0),
        metavar=("MIN_S", "MAX_S"),
        help="seconds between kills; 0 0 = none",
    )
    parser.add_argument(
        "--sentinel",
        action="store_true",
        help="a primary, a replica and three sentinels; Redis kills become failovers",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    log_dir = Path(args.log)
    log_dir.mkdir(parents=True, exist_ok=True)

    redises = Redises(sentinel=args.sentinel, rng=rng)
    sandbox_port = free_port()
    env = {
        **os.environ,
        **redises.env,
        "ALLMYSMS_LOGIN": "soak",
        "ALLMYSMS_API_KEY": "soak-key-1234",
        "PYTHONPATH": str(ROOT),
        "ALLMYSMS_BASE_URL": f"http://127.0.0.1:{sandbox_port}/http/9.0",
        "SMSQ_LOG_FORMAT": "json",
        "SMSQ_LOG_LEVEL": "WARNING",
        "SMSQ_RECONCILE_INTERVAL_S": "1",
        "SMSQ_IDLE_WAIT_S": "0.2",
    }
    # The gateway takes the sandbox's receipts (webhooks), which settle unknown messages the
    # provider did get; the workers' polling fallback settles more by getAcks lookups.
    webhook_port, webhook_secret = free_port(), "soak-webhook-secret-5f2a8c1e9d3b7a60"
    env.update(
        {
            "SMSQ_WEBHOOK_SECRET": webhook_secret,
            "SMSQ_PRODUCERS": json.dumps([{"login": "soak", "api_key": "soak-gw-key-9b1c"}]),
            "SMSQ_POLL_INTERVAL_S": "2",
            "SMSQ_POLL_ACKS_AFTER_S": "30",
        }
    )
    gateway = subprocess.Popen(
        [sys.executable, "-m", "worker", "gateway", "--port", str(webhook_port)],
        env=env,
        stdout=(log_dir / "gateway.log").open("w"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    hooks = f"http://127.0.0.1:{webhook_port}/webhooks/allmysms/{webhook_secret}"
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker",
            "sandbox",
            "--port",
            str(sandbox_port),
            "--receipts-url",
            f"{hooks}/receipts",
            "--replies-url",
            f"{hooks}/replies",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=(log_dir / "sandbox.log").open("w"),
        cwd=ROOT,
    )
    assert sandbox.stdout is not None
    sandbox.stdout.readline()
    # 15 credits per SMS: the sandbox's default million would run out at 66,666 messages.
    httpx.post(
        f"http://127.0.0.1:{sandbox_port}/_sandbox/credits", json={"credits": 10**12}, timeout=10
    ).raise_for_status()
    kills: collections.Counter[str] = collections.Counter()
    group_log = (log_dir / "workers.log").open("w")

    def start_group() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "--processes", str(args.processes)],
            env=env,
            stdout=group_log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    group = start_group()
    keys = [f"soak-{i:06d}" for i in range(args.messages)]
    enqueued = threading.Event()

    def produce() -> None:
        for start in range(0, len(keys), BATCH):
            batch = [
                {"key": k, "campaign": k, "text": f"soak {k}", "to": ["0612345678"]}
                for k in keys[start : start + BATCH]
            ]
            while True:
                try:
                    Producer(redises.client(), redises.settings).enqueue_many(batch)
                    break
                except RedisUnavailableError:
                    time.sleep(0.5)  # same keys again: duplicates are ignored
        enqueued.set()

    started = time.monotonic()
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    client = redises.client()

    def pending() -> int:
        try:
            total = sum(
                client.llen(f"rq:queue:smsq-{lane}")
                + client.llen(f"rq:queue:smsq-{lane}:intermediate")
                + client.zcard(f"rq:wip:smsq-{lane}")
                for lane in ("urgent", "default", "bulk")
            )
            return total + client.zcard("smsq:sending") + (0 if enqueued.is_set() else 1)
        except Exception:  # noqa: BLE001 - Redis may be down mid-chaos
            return 1

    while pending() and time.monotonic() - started < DEADLINE_S:
        time.sleep(rng.uniform(*args.chaos_every) if args.chaos_every[1] else 2)
        if not args.chaos_every[1]:
            print(f"{time.monotonic() - started:7.1f}s  pending {pending()}", flush=True)
            continue
        action = rng.choices(["worker", "group", "redis"], weights=[6, 1, 2])[0]
        if action == "worker":
            children = subprocess.run(
                ["pgrep", "-P", str(group.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
            if children:
                os.kill(int(rng.choice(children)), signal.SIGKILL)
                kills["worker process"] += 1
        elif action == "group":
            os.killpg(group.pid, signal.SIGKILL)
            group.wait()
            kills["whole worker group"] += 1
            time.sleep(rng.uniform(0.5, 2))
            group = start_group()
        else:
            kills[redises.kill()] += 1
        print(
            f"{time.monotonic() - started:7.1f}s  killed {action:<6}  pending {pending()}",
            flush=True,
        )

    # Quiet period: dead workers' in-flight sends become unknown, stuck jobs are requeued, and
    # unknowns the provider got are settled from its receipts (webhooks, then getAcks lookups).
    end = time.monotonic() + 60
    store = MessageStore(client)
    while time.monotonic() < end:
        time.sleep(2)
        if not pending() and client.zcard("smsq:sending") == 0:
            break
    settle_end = time.monotonic() + SETTLE_WAIT_S
    while time.monotonic() < settle_end and _settleable(client, sandbox_port):
        time.sleep(2)
    settled = _settled_counts(client)
    os.killpg(group.pid, signal.SIGTERM)
    group.wait(timeout=60)
    elapsed = time.monotonic() - started
    requests = httpx.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/requests", timeout=60).json()
    (log_dir / "requests.json").write_text(json.dumps(requests))
    # A worker killed while writing its request leaves a body the provider cannot read: it is
    # counted, not attributed to a key (its message is one of the unknowns).
    # The polling fallback's getAcks / getPulls are logged too: only sendSms requests count.
    requests = [r for r in requests if r.get("endpoint", "sendSms") == "sendSms"]
    unreadable = [r for r in requests if not r.get("data")]
    requests = [r for r in requests if r.get("data")]
    sandbox.send_signal(signal.SIGTERM)
    sandbox.wait(timeout=30)
    gateway.send_signal(signal.SIGTERM)
    gateway.wait(timeout=30)
    verdict = check(store, requests, keys)
    redises.stop()

    lost = [k for k in keys if k not in verdict.states or verdict.states[k] not in TERMINAL_STATES]
    duplicated = [k for k, n in verdict.requests.items() if n > 1]
    unknown = [k for k, s in verdict.states.items() if s is State.UNKNOWN]
    reasons = collections.Counter(verdict.records[k].error for k in unknown)
    explained = {"worker died during the send", "outcome lost in a Redis failover"}
    unexplained = [k for k in unknown if verdict.records[k].error not in explained]
    print()
    print(f"messages accepted     {len(keys)}")
    print(f"elapsed               {elapsed:.0f} s ({len(keys) / elapsed:.0f} msg/s with chaos)")
    print(f"kills                 {dict(kills)}")
    print(
        f"provider requests     {len(requests)} (+{len(unreadable)} unreadable, cut by a "
        "kill mid-write)"
    )
    print(
        "states                "
        + str({s.value: verdict.count(s) for s in State if verdict.count(s)})
    )
    print(f"lost                  {len(lost)}")
    print(f"duplicated requests   {len(duplicated)}")
    print(f"unknown               {len(unknown)}  reasons {dict(reasons)}")
    print(
        f"unknown with a request {sum(1 for k in unknown if verdict.requests[k])}, "
        f"without {sum(1 for k in unknown if not verdict.requests[k])}"
    )
    print(f"unexplained unknown   {len(unexplained)}")
    print(
        f"unknown settled       {sum(settled.values())}  by "
        f"{dict(sorted(settled.items())) or {}} (from receipts and lookups; each sent once)"
    )
    print(f"invariant problems    {len(verdict.problems)}  {verdict.problems[:5]}")
    return 0 if not lost and not duplicated and not verdict.problems else 1


def _settled_counts(client: Redis) -> dict[str, int]:
    """How many unknown messages were settled from evidence, by how (receipt, reply, lookup)."""
    try:
        metrics = client.hgetall("smsq:metrics")
    except Exception:  # noqa: BLE001 - Redis may be down mid-chaos
        return {}
    prefix = "unknown_settled:"
    counts = {}
    for name, value in metrics.items():
        text = name.decode() if isinstance(name, bytes) else str(name)
        if text.startswith(prefix):
            counts[text.removeprefix(prefix)] = int(value)
    return counts


def _settleable(client: Redis, sandbox_port: int) -> bool:
    """Whether the sandbox still has receipts to push, or unmatched receipts (leads) wait for
    the polling fallback's lookup."""
    try:
        pending = httpx.get(
            f"http://127.0.0.1:{sandbox_port}/_sandbox/receipts/pending", timeout=10
        ).json()["pending"]
        return bool(pending or client.hlen("smsq:evidence:campaigns"))
    except Exception:  # noqa: BLE001 - Redis may be down mid-chaos
        return False


if __name__ == "__main__":
    sys.exit(main())
