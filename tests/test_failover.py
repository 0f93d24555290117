"""A worker in Sentinel mode against real sentinels: its liveness setting must outlast a
failover."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from producers.connection import connect
from producers.enqueue import Producer
from producers.errors import ConfigError, RedisUnavailableError
from worker.connections import check_failover_margin
from worker.dev.sentinel import SentinelTopology
from worker.settings import Settings


pytestmark = pytest.mark.workers

MESSAGES = 240
BATCH = 20
DOWN_AFTER_MS = 1000
SETTLE_S = 90.0


@pytest.fixture
def topology() -> Iterator[SentinelTopology]:
    with SentinelTopology(down_after_ms=DOWN_AFTER_MS) as started:
        yield started


def sentinel_env(topology: SentinelTopology) -> dict[str, str]:
    return {
        "REDIS_URL": "redis://127.0.0.1:6379/0",  # host unused in Sentinel mode
        "SMSQ_REDIS_SENTINELS": topology.sentinels_env,
        "SMSQ_REDIS_SENTINEL_MASTER": topology.master_name,
        "SMSQ_REDIS_WAIT_TIMEOUT_MS": "500",
        "SMSQ_WORKER_DEAD_AFTER_S": "12",
        "SMSQ_RECONCILE_INTERVAL_S": "0.5",
        "SMSQ_IDLE_WAIT_S": "0.2",
        "SMSQ_SEND_SLOTS": "4",
    }


def enqueue_through(producer: Producer, keys: list[str]) -> None:
    """Enqueue in batches, retrying each batch with the same keys until it is acknowledged."""
    for start in range(0, len(keys), BATCH):
        batch = [
            {"key": k, "to": [f"+3361{n:07d}"], "text": "Votre code", "campaign": k}
            for n, k in enumerate(keys[start : start + BATCH], start=start)
        ]
        deadline = time.monotonic() + SETTLE_S
        while True:
            try:
                producer.enqueue_many(batch)
                break
            except RedisUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(0.02)


def test_a_worker_refuses_a_dead_after_a_failover_could_outlast(
    topology: SentinelTopology,
) -> None:
    env = {**sentinel_env(topology), "SMSQ_WORKER_DEAD_AFTER_S": "5"}
    settings = Settings.from_env(env)
    client = connect(settings.producer)
    with pytest.raises(ConfigError) as caught:
        check_failover_margin(settings, client)
    assert str(caught.value) == (
        "SMSQ_WORKER_DEAD_AFTER_S: must be at least 11 with these sentinels: their "
        "down-after-milliseconds is 1000, and a worker silent for a failover must not be "
        "declared dead (its sends would become unknown)"
    )
    fine = Settings.from_env({**env, "SMSQ_WORKER_DEAD_AFTER_S": "11"})
    assert check_failover_margin(fine, client) == 1.0
    for sentinel in client.connection_pool.sentinel_manager.sentinels:  # type: ignore[attr-defined]
        sentinel.close()
    client.close()
