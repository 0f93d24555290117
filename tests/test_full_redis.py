"""A Redis that answers but refuses writes (full under ``noeviction``, or a read-only replica
during a failover) while a worker sends: the worker waits it out on every path, and the outcome
it holds is written once Redis takes writes again.

(A Lua script that has written once may go on writing past ``maxmemory``, so the outcome script,
which starts by dropping the job, is not refused by a full Redis; a read-only one refuses it.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from redis import Redis

from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import Workers, wait_for
from worker.dev.redis_server import RedisServer
from worker.sandbox import SandboxProvider


def test_a_worker_waits_out_a_full_redis(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    sandbox.add_fault({"action": "delay", "delay_ms": 1500})
    producer.enqueue({"key": "full", "text": "Hi", "to": ["0612345678"]})
    old = str(redis.config_get("maxmemory")["maxmemory"])

    def fill_while_sending() -> None:
        # Claimed: the POST is under way (the sandbox answers 1.5 s later).
        wait_for(lambda: getattr(store.get("full"), "state", None) is State.SENDING, what="claim")
        redis.config_set("maxmemory", 1)  # every write refused with OOM from now on
        time.sleep(3)
        redis.config_set("maxmemory", old)

    filler = threading.Thread(target=fill_while_sending)
    filler.start()
    run = workers.run_burst()
    filler.join()

    assert run.returncode == 0, run.log[-3000:]
    record = store.get("full")
    assert record is not None
    assert (record.state, record.provider_status) == (State.SENT, 100)
    unavailable = [e for e in run.events() if e.get("event") == "sms.worker.redis_unavailable"]
    assert "OutOfMemoryError" in {e.get("error") for e in unavailable}
    assert "Traceback" not in run.log
    assert len(sandbox.requests()) == 1


def wait_synced(replica: Redis) -> None:
    wait_for(
        lambda: replica.info("replication").get("master_link_status") == "up",
        what="the replica to sync",
    )


def test_the_outcome_waits_out_a_read_only_redis(sandbox: SandboxProvider, tmp_path: Path) -> None:
    """A's primary role moves to B and back while the worker's POST is in flight (a failover
    and its fail-back, by hand): A is a read-only replica when the worker writes the outcome,
    so it is retried until A is primary again, and the message ends sent, once."""
    with RedisServer() as a_server, RedisServer() as b_server:
        a, b = Redis.from_url(a_server.url), Redis.from_url(b_server.url)
        pool = Workers(a_server.url, sandbox.base_url, tmp_path)
        sandbox.add_fault({"action": "delay", "delay_ms": 1500})
        Producer(a, ProducerSettings()).enqueue({"key": "ro", "text": "Hi", "to": ["0612345678"]})
        store = MessageStore(a)
        b.replicaof("127.0.0.1", a_server.port)
        wait_synced(b)

        def fail_over_and_back() -> None:
            wait_for(lambda: getattr(store.get("ro"), "state", None) is State.SENDING, what="claim")
            b.replicaof("NO", "ONE")
            a.replicaof("127.0.0.1", b_server.port)  # A: read-only, a copy of B
            wait_synced(a)
            time.sleep(2.5)
            a.replicaof("NO", "ONE")

        mover = threading.Thread(target=fail_over_and_back)
        mover.start()
        run = pool.run_burst()
        mover.join()
        pool.stop_all()

        assert run.returncode == 0, run.log[-3000:]
        record = store.get("ro")
        assert record is not None
        assert (record.state, record.provider_status) == (State.SENT, 100)
        retries = [e for e in run.events() if e.get("event") == "sms.store.retry_scheduled"]
        assert retries
        assert {(e["error"], e["state"]) for e in retries} == {("ReadOnlyError", "sent")}
        assert "Traceback" not in run.log
        assert len(sandbox.requests()) == 1
        a.close()
        b.close()
