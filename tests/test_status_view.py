"""``smsq status`` says what an operator needs without reading Redis: who holds a send in flight
and whether it is alive, when a silent worker's send will be settled, a split message's parts,
and a long recipient list summarised (``--recipients`` for all of it)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

from redis import Redis

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.store import decoded
from tests.helpers.crashes import FAST
from tests.helpers.processes import Workers, wait_for
from worker.sandbox import SandboxProvider


def phones(count: int) -> list[str]:
    return [f"06123{n:05d}" for n in range(count)]


def worker_line(status: str) -> str:
    [line] = [line for line in status.splitlines() if line.startswith("worker:")]
    return line


def unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_a_silent_workers_send_says_since_when_and_that_nobody_settles_it(
    producer: Producer, redis: Redis, workers: Workers
) -> None:
    producer.enqueue({"key": "killed", "text": "Hi", "to": ["0612345678"]})
    crashed = workers.run_burst(**FAST, SMSQ_CRASH_AT="after_send")
    assert crashed.returncode == 137, crashed.log
    mid = keys.message_id("killed")
    worker = decoded(redis.hget(keys.message(mid), "claimed_by") or b"")
    wait_for(lambda: not redis.exists(keys.alive(worker)), what="the alive key to expire")

    text = workers.smsq("status", "killed", **FAST)
    data = json.loads(workers.smsq("status", "killed", "--json", **FAST).stdout)

    assert text.returncode == 0
    claim = data["claim"]
    assert (claim["worker"], claim["alive"], claim["settles"], claim["live_workers"]) == (
        worker,
        False,
        "unknown",
        0,
    )
    assert worker_line(text.stdout) == (
        f"worker:     {worker} silent since {claim['last_heartbeat_at']}, claimed since "
        f"{claim['claimed_at']}; settled as unknown when a worker starts (none is running to "
        "settle it)"
    )
    assert 0 <= unix(claim["claimed_at"]) - unix(claim["last_heartbeat_at"]) <= 2


def test_with_a_live_worker_the_settling_time_is_given(
    producer: Producer, redis: Redis, workers: Workers
) -> None:
    """The silent worker's own dead-after window (1.5 s here) counts from its last heartbeat,
    then one reconcile interval of the survivors (0.3 s). The survivor is a registration only,
    so no reconciler races the reading (the settling itself: tests/test_crashes.py)."""
    producer.enqueue({"key": "settles", "text": "Hi", "to": ["0612345678"]})
    assert workers.run_burst(**FAST, SMSQ_CRASH_AT="after_send").returncode == 137
    worker = decoded(redis.hget(keys.message(keys.message_id("settles")), "claimed_by") or b"")
    redis.sadd(keys.RQ_WORKERS, keys.RQ_WORKER_PREFIX + "survivor")
    redis.set(keys.alive("survivor"), "1", ex=60)
    wait_for(lambda: not redis.exists(keys.alive(worker)), what="the alive key to expire")

    before = time.time()
    shown = json.loads(workers.smsq("status", "settles", "--json", **FAST).stdout)
    after = time.time()
    text = workers.smsq("status", "settles", **FAST).stdout
    after_text = time.time()

    assert shown["state"] == "sending"
    claim = shown["claim"]
    assert (claim["worker"], claim["alive"], claim["live_workers"]) == (worker, False, 1)
    due = unix(claim["last_heartbeat_at"]) + 1.5  # shown to the second: 1 s either way
    assert max(due, before) + 0.3 - 1 <= unix(claim["settles_at_about"])
    assert unix(claim["settles_at_about"]) <= max(due, after) + 0.3 + 1
    shown_at = re.search(r"; settled as unknown at about (\S+)$", worker_line(text))
    assert shown_at is not None
    assert max(due, before) + 0.3 - 1 <= unix(shown_at.group(1)) <= max(due, after_text) + 1.3


def test_a_live_send_names_its_worker_as_alive(
    producer: Producer, redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    sandbox.add_fault({"action": "delay", "delay_ms": 2500})
    producer.enqueue({"key": "slow", "text": "Hi", "to": ["0612345678"]})
    workers.start(**FAST)
    wait_for(lambda: len(sandbox.requests()) == 1, what="the request to reach the sandbox")

    text = workers.smsq("status", "slow", **FAST).stdout
    worker = decoded(redis.hget(keys.message(keys.message_id("slow")), "claimed_by") or b"")

    assert re.fullmatch(
        rf"worker:     {re.escape(worker)} \(alive\), claimed since \S+\+00:00", worker_line(text)
    )


def test_long_recipient_lists_are_summarised(
    producer: Producer, sandbox: SandboxProvider, workers: Workers
) -> None:
    producer.enqueue({"key": "big list", "text": "Hi", "to": phones(25)})
    assert workers.run_burst().returncode == 0

    short = workers.smsq("status", "big list").stdout.splitlines()
    full = workers.smsq("status", "big list", "--recipients").stdout.splitlines()

    assert len([line for line in short if line.startswith("  sent ")]) == 10
    assert "  ... 15 more recipient(s): smsq status 'big list' --recipients" in short
    assert len([line for line in full if line.startswith("  sent ")]) == 25
    assert not any("more recipient(s)" in line for line in full)
    assert len(sandbox.requests()) == 1


def test_a_split_message_lists_its_parts(redis: Redis, workers: Workers) -> None:
    Producer(redis, ProducerSettings(chunk_recipients=4)).enqueue(
        {"key": "split", "text": "Hi", "to": phones(10)}
    )
    assert workers.run_burst().returncode == 0

    lines = workers.smsq("status", "split").stdout.splitlines()

    start = lines.index("parts:      3 (3 sent)")
    assert [re.sub(r"\s+", " ", line.strip()) for line in lines[start + 1 : start + 4]] == [
        "part 1 split#1/3 sent 4 recipient(s) AllMySMS 100",
        "part 2 split#2/3 sent 4 recipient(s) AllMySMS 100",
        "part 3 split#3/3 sent 2 recipient(s) AllMySMS 100",
    ]
