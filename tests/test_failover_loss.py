"""The durability barrier is what keeps acknowledged writes across a plain ``SENTINEL FAILOVER``.

One producer writes at full speed through a Sentinel-managed client while the primary changes.
The demoted primary goes on accepting writes until the sentinels make it a replica of the new
one (about 10 s), and then drops them with its data set. Without the barrier those writes were
acknowledged: lost requests. With ``WAIT 1`` none of them is acknowledged, and every request that
was ends on the new primary.

The end-to-end test (tests/test_failover.py) runs workers too; it cannot run them without the
barrier, since Sentinel mode refuses ``SMSQ_REDIS_WAIT_REPLICAS=0``. What a lost claim would do
(a duplicate SMS) follows from the loss shown here: a claim is written by the same kind of
script on the same kind of connection.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest
from redis import Redis

from producers.config import ProducerSettings
from producers.connection import connect
from producers.enqueue import Producer
from producers.errors import RedisUnavailableError
from producers.store import MessageStore
from tests.helpers.processes import wait_for
from worker.dev.sentinel import SentinelTopology


pytestmark = pytest.mark.workers

WRITING_FOR_S = 60.0
"""Upper bound of the writer's life: the failover, the old primary's demotion and a margin."""


@pytest.fixture
def topology() -> Iterator[SentinelTopology]:
    with SentinelTopology(down_after_ms=1000) as started:
        yield started


class Writer(threading.Thread):
    """Enqueue ``loss-N`` for N = 0, 1, ... until stopped; a refused write is retried, same key."""

    def __init__(self, producer: Producer) -> None:
        super().__init__(daemon=True)
        self.producer = producer
        self.acknowledged: list[str] = []
        self.refusals = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + WRITING_FOR_S
        n = 0
        while not self.stopping.is_set() and time.monotonic() < deadline:
            key = f"loss-{n}"
            try:
                self.producer.enqueue({"key": key, "to": ["+33612345678"], "text": "Votre code"})
            except RedisUnavailableError:
                self.refusals += 1
                time.sleep(0.01)
                continue
            self.acknowledged.append(key)
            n += 1


def replicating(port: int) -> bool:
    """The server on ``port`` is a replica with its link to the primary up."""
    client = Redis(port=port, decode_responses=True)
    try:
        info = client.info("replication")
    finally:
        client.close()
    return info["role"] == "slave" and info.get("master_link_status") == "up"


@pytest.mark.parametrize("replicas", [0, 1], ids=["barrier_off", "barrier_on"])
def test_a_plain_failover_loses_acknowledged_enqueues_only_without_the_barrier(
    replicas: int, topology: SentinelTopology
) -> None:
    env = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "SMSQ_REDIS_SENTINELS": topology.sentinels_env,
        "SMSQ_REDIS_SENTINEL_MASTER": topology.master_name,
        "SMSQ_REDIS_WAIT_TIMEOUT_MS": "300",
    }
    # Sentinel mode refuses SMSQ_REDIS_WAIT_REPLICAS=0: only a test can switch the barrier off.
    settings = dataclasses.replace(ProducerSettings.from_env(env), wait_replicas=replicas)
    client = connect(settings, socket_timeout_s=2, connect_timeout_s=1)
    writer = Writer(Producer(client, settings))
    writer.start()
    try:
        wait_for(lambda: len(writer.acknowledged) >= 200, timeout_s=20, what="writes flowing")
        old = topology.primary()
        new = topology.failover()
        # The loss window closes when the sentinels turn the old primary into a replica.
        wait_for(lambda: replicating(old), timeout_s=40, what="the old primary demoted")
        after = len(writer.acknowledged)
        wait_for(lambda: len(writer.acknowledged) >= after + 50, timeout_s=20, what="writes after")
    finally:
        writer.stopping.set()
        writer.join(timeout=10)
    assert not writer.is_alive()

    survivor = Redis(port=new, decode_responses=True)
    store = MessageStore(survivor)
    lost = [key for key in writer.acknowledged if store.get(key) is None]
    if replicas == 0:
        # Measured on this machine: hundreds to thousands per run (about 10 s of writes).
        assert len(lost) > 0, "the plain failover lost nothing: the scenario no longer provokes"
        assert writer.refusals < len(lost)
    else:
        assert lost == []
        assert writer.refusals > 0, "the barrier never fell short: no write met the switch"
    survivor.close()
