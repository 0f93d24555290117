"""Redis outages longer than every timeout involved: workers wait them out and carry on."""

from __future__ import annotations

import time

from redis import Redis

from producers.enqueue import Producer
from producers.store import MessageStore
from tests.helpers.crashes import FAST, terminal
from tests.helpers.processes import Workers, wait_for
from worker.dev.redis_server import RedisServer
from worker.sandbox import SandboxProvider


OUTAGE_S = 75.0
"""Longer than RQ's maintenance interval (60 s), its worker key TTL (60 s), the alive key's
TTL and the reconcile interval (FAST), and the longest back-off between attempts (10 s)."""


def test_an_idle_worker_waits_out_a_long_redis_outage(
    sandbox: SandboxProvider, workers: Workers
) -> None:
    server = RedisServer(appendonly=True).start()
    try:
        workers.redis_url = server.url
        worker = workers.start(**FAST)
        time.sleep(1.0)
        server.kill()
        time.sleep(OUTAGE_S)
        assert worker.poll() is None, "the worker died during the outage"
        server = RedisServer(port=server.port, directory=server.directory, appendonly=True).start()
        client = Redis.from_url(server.url)
        Producer(client).enqueue({"key": "after-outage", "text": "Hi", "to": ["0612345678"]})
        wait_for(
            lambda: terminal(MessageStore(client), "after-outage"), what="the send", timeout_s=30
        )
        assert worker.poll() is None
    finally:
        workers.stop_all()
        server.stop()
    log = (workers.log_dir / "worker-0.log").read_text()
    assert "Traceback" not in log
    assert len(sandbox.requests()) == 1


def test_a_worker_started_before_its_redis_waits_for_it(
    sandbox: SandboxProvider, workers: Workers
) -> None:
    """`smsq worker` started while Redis is down logs where it waits (no password) and starts
    once Redis answers; a burst worker fails at once instead (see test_cli)."""
    server = RedisServer()
    workers.redis_url = f"redis://smsq:s3cret-pass@127.0.0.1:{server.port}/0"
    try:
        worker = workers.start(**FAST)
        log_file = workers.log_dir / "worker-0.log"
        wait_for(lambda: "waiting_for_redis" in log_file.read_text(), what="the waiting log")
        server.start()
        server_client = Redis.from_url(server.url)
        server_client.acl_setuser(
            "smsq",
            enabled=True,
            passwords=["+s3cret-pass"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        client = Redis.from_url(workers.redis_url)
        Producer(client).enqueue({"key": "late-redis", "text": "Hi", "to": ["0612345678"]})
        wait_for(lambda: terminal(MessageStore(client), "late-redis"), what="the send")
        assert worker.poll() is None
    finally:
        workers.stop_all()
        server.stop()
    log = log_file.read_text()
    assert f'"address": "127.0.0.1:{server.port}/0"' in log
    assert "s3cret-pass" not in log
    assert "Traceback" not in log
    assert len(sandbox.requests()) == 1
