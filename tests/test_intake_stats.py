"""Raw intake entries are visible before a worker takes them: ``smsq stats``, ``/metrics`` (and
the admin overview, same numbers) count what waits, what live workers hold, and how long the
head entry has been seen waiting."""

from __future__ import annotations

import hashlib
import json
import time

from redis import Redis

from producers import keys
from tests.helpers.processes import Workers
from worker.admin.metrics import render
from worker.store.stats import collect


ENTRY = b'{"key": "i-%d", "to": ["0612345678"], "text": "Hi"}'


def seen_ago(redis: Redis, head: bytes, seconds: float) -> None:
    """Pretend the stats first saw ``head`` at the head ``seconds`` ago."""
    digest = hashlib.sha256(head).hexdigest()[:32]
    redis.set(keys.INTAKE_HEAD_SEEN, f"{digest} {time.time() - seconds:.3f}")


def test_an_empty_intake_counts_nothing(redis: Redis) -> None:
    intake = collect(redis).intake

    assert (intake.depth, intake.taken, intake.oldest_seen_s) == (0, 0, None)
    assert redis.exists(keys.INTAKE_HEAD_SEEN) == 0


def test_waiting_entries_and_their_age_in_stats_and_metrics(redis: Redis, workers: Workers) -> None:
    entries = [ENTRY % i for i in range(3)]
    redis.rpush(keys.INTAKE, *entries)

    first = json.loads(workers.smsq("stats", "--json").stdout)["intake"]
    seen_ago(redis, entries[0], 90)
    later = json.loads(workers.smsq("stats", "--json").stdout)["intake"]
    human = workers.smsq("stats").stdout.splitlines()
    metrics = render(redis).decode().splitlines()

    assert first == {"depth": 3, "taken": 0, "oldest_seen_s": 0.0}
    assert (later["depth"], later["taken"]) == (3, 0)
    assert 90 <= later["oldest_seen_s"] < 120
    [line] = [line for line in human if line.startswith("intake:")]
    assert line.startswith("intake: 3 waiting, the oldest seen waiting 9")
    assert line.endswith(" s, 0 taken by workers")
    assert "smsq_intake_depth 3.0" in metrics
    assert "smsq_intake_taken 0.0" in metrics
    [age] = [m for m in metrics if m.startswith("smsq_intake_oldest_age_seconds ")]
    assert 90 <= float(age.split()[1]) < 120


def test_a_new_head_starts_its_own_clock(redis: Redis) -> None:
    entries = [ENTRY % i for i in range(2)]
    redis.rpush(keys.INTAKE, *entries)
    collect(redis)
    seen_ago(redis, entries[0], 300)
    assert (collect(redis).intake.oldest_seen_s or 0) >= 300

    redis.lpop(keys.INTAKE)  # a worker took the old head

    assert collect(redis).intake.oldest_seen_s == 0.0
    redis.lpop(keys.INTAKE)
    assert collect(redis).intake.oldest_seen_s is None


def test_taken_counts_the_lists_of_live_workers_only(redis: Redis) -> None:
    """A stopped worker's list is not "taken": the next worker start gives it back."""
    redis.sadd(keys.RQ_WORKERS, "rq:worker:live-1", "rq:worker:killed-1")
    redis.set(keys.alive("live-1"), "1", ex=60)
    redis.rpush(keys.intake_processing("live-1"), ENTRY % 1, ENTRY % 2)
    redis.rpush(keys.intake_processing("killed-1"), ENTRY % 5)  # kill -9: still in rq:workers
    redis.rpush(keys.intake_processing("stopped-1"), ENTRY % 3)
    redis.rpush(keys.INTAKE_PROCESSING, ENTRY % 4)  # the list every worker shared before 0.2

    intake = collect(redis).intake

    assert (intake.depth, intake.taken, intake.oldest_seen_s) == (0, 3, None)
    redis.srem(keys.RQ_WORKERS, "rq:worker:live-1", "rq:worker:killed-1")
