"""More of the fault plan: stalled TLS, concurrent duplicates, odd keys and texts, a 10,000
recipient message, Redis restarts under an idle worker, an intake entry left by a crash."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from redis import Redis

from producers.config import ProducerSettings
from producers.enqueue import Enqueued, Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.crashes import FAST, terminal
from tests.helpers.processes import Workers, wait_for
from worker.dev.redis_server import RedisServer
from worker.sandbox import SandboxProvider


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP listener that accepts and never speaks: a TLS handshake to it stalls."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_stalled_tls_handshake_is_retried_then_fails_without_a_request(
    silent_listener: int, producer: Producer, store: MessageStore, workers: Workers
) -> None:
    """A TLS handshake that never completes is ConnectTimeout: provably unsent, retried, failed."""
    producer.enqueue({"key": "tls-stall", "text": "Hi", "to": ["0612345678"]})

    workers.run_burst(
        ALLMYSMS_BASE_URL=f"https://127.0.0.1:{silent_listener}/http/9.0",
        SMSQ_HTTP_CONNECT_TIMEOUT_S="0.3",
        SMSQ_SEND_ATTEMPTS="2",
    )

    record = store.get("tls-stall")
    assert record is not None
    assert (record.state, record.attempts, record.error) == (
        State.FAILED,
        2,
        "ConnectTimeout: AllMySMS was not reached",
    )


def test_concurrent_enqueues_of_one_key_make_one_job(
    redis_server: RedisServer, redis: Redis
) -> None:
    """Twenty producers racing on one key: one is new, nineteen are duplicates, one job."""
    results: list[Enqueued] = []
    barrier = threading.Barrier(20)

    def produce() -> None:
        producer = Producer(Redis.from_url(redis_server.url))
        barrier.wait()
        results.append(producer.enqueue({"key": "race", "text": "Hi", "to": ["0612345678"]}))

    threads = [threading.Thread(target=produce) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.duplicate for r in results) == [False] + [True] * 19
    assert redis.llen("rq:queue:smsq-default") == 1


def test_any_text_key_and_emoji_text_arrive_intact(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A 200-character key with ':' and accents, and an emoji text, go through byte for byte."""
    key = ("commande:été/№42 " * 12)[:200]
    text = "Votre colis 📦 arrive à 14h — merci ! €"
    producer.enqueue({"key": key, "text": text, "to": ["0612345678"]})

    workers.run_burst()

    [request] = sandbox.requests()
    assert request["data"]["MESSAGE"] == text
    record = store.get(key)
    assert record is not None
    assert (record.state, record.encoding, record.segments) == (State.SENT, "ucs2", 1)


def test_ten_thousand_recipients_in_one_message(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """The contract's maximum of 10,000 recipients goes out as 20 requests of 500 (the default
    SMSQ_CHUNK_RECIPIENTS), every number exactly once, and reads back as one message."""
    phones = [f"336{n:08d}" for n in range(10_000_000, 10_010_000)]
    enqueued = Producer(redis, ProducerSettings()).enqueue(
        {"key": "big", "text": "Hi", "to": ["+" + p for p in phones]}
    )

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    assert enqueued.parts == 20
    requests = sandbox.requests()
    assert sorted(len(r["data"]["SMS"]) for r in requests) == [500] * 20
    sent = [sms["MOBILEPHONE"] for r in requests for sms in r["data"]["SMS"]]
    assert sorted(sent) == phones
    record = store.get("big")
    assert record is not None
    assert (record.state, record.nb_contacts, len(record.sms_ids)) == (State.SENT, 10_000, 10_000)
    assert [p["key"] for p in record.parts] == [f"big#{n}/20" for n in range(1, 21)]
    assert {p["state"] for p in record.parts} == {"sent"}


def test_split_message_keeps_each_part_separate_and_is_enqueued_once(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """1,200 recipients with parts of 500: three requests (500, 500, 200); the second part is
    refused by AllMySMS, so the message is partial and only that part is a dead letter. A
    second enqueue of the key adds nothing."""
    producer = Producer(redis, ProducerSettings(chunk_recipients=500))
    phones = [f"336{n:08d}" for n in range(20_000_000, 20_001_200)]
    request = {"key": "split", "text": "Hi", "to": phones}
    first = producer.enqueue(request)
    again = producer.enqueue(request)
    sandbox.add_fault({"action": "status", "status": 106, "match": {"phone": phones[700]}})

    run = workers.run_burst(SMSQ_SEND_SLOTS="1")

    assert run.returncode == 0, run.log
    assert (first.parts, first.duplicate, again.duplicate) == (3, False, True)
    assert [len(r["data"]["SMS"]) for r in sandbox.requests()] == [500, 500, 200]
    record = store.get("split")
    assert record is not None
    assert [(p["key"], p["state"], p["recipients"]) for p in record.parts] == [
        ("split#1/3", "sent", 500),
        ("split#2/3", "rejected", 500),
        ("split#3/3", "sent", 200),
    ]
    assert (record.state, record.recipients, len(record.sms_ids)) == (State.PARTIAL, 1200, 700)
    assert [d.key for d in store.dead_letters()] == ["split#2/3"]
    assert len(record.request["to"]) == 1200  # the whole request, for ids and purges
    [listed, missing] = store.get_many_by_id([record.message_id, "0" * 32])
    assert listed == record  # lists (the admin's) combine split messages too
    assert missing is None


def test_idle_worker_survives_a_redis_restart(
    sandbox: SandboxProvider, workers: Workers, redis: Redis
) -> None:
    """An idle worker reconnects after redis-server is killed and restarted, then sends."""
    server = RedisServer(appendonly=True).start()
    try:
        workers.redis_url = server.url
        worker = workers.start(**FAST)
        time.sleep(1.0)
        server.kill()
        time.sleep(1.5)
        server = RedisServer(port=server.port, directory=server.directory, appendonly=True).start()
        client = Redis.from_url(server.url)
        Producer(client).enqueue({"key": "after-restart", "text": "Hi", "to": ["0612345678"]})
        wait_for(lambda: terminal(MessageStore(client), "after-restart"), what="the send")
        assert worker.poll() is None
    finally:
        workers.stop_all()
        server.stop()
    assert len(sandbox.requests()) == 1


def test_intake_entry_left_in_processing_by_a_crash_is_recovered(
    redis: Redis, store: MessageStore, workers: Workers
) -> None:
    """An entry a crashed worker had taken from the intake list is processed on next start."""
    redis.rpush(
        "smsq:intake:processing", json.dumps({"key": "orphan", "text": "Hi", "to": ["0612345678"]})
    )

    workers.run_burst()

    record = store.get("orphan")
    assert record is not None
    assert record.state is State.SENT
    assert redis.llen("smsq:intake:processing") == 0


def test_a_code_never_leaves_after_its_validity_between_connect_retries(
    producer: Producer, store: MessageStore, workers: Workers
) -> None:
    """AllMySMS refuses connections; connect errors are retried every 0.5 s for up to 20
    attempts (10 s), but the code is valid 3 s: it ends expired, not failed after 20."""
    from worker.dev.redis_server import free_port

    producer.enqueue({"key": "otp", "text": "Code 1234", "to": ["0612345678"], "valid_for_s": 3})

    run = workers.run_burst(
        ALLMYSMS_BASE_URL=f"http://127.0.0.1:{free_port()}/http/9.0",
        SMSQ_SEND_ATTEMPTS="20",
        SMSQ_RETRY_INITIAL_WAIT_S="0.5",
        SMSQ_RETRY_MAX_WAIT_S="0.5",
        SMSQ_SEND_MAX_WAIT_S="15",
    )

    assert run.returncode == 0, run.log
    record = store.get("otp")
    assert record is not None
    assert (record.state, record.error) == (
        State.EXPIRED,
        "valid_for_s ran out before an attempt could leave; nothing was sent",
    )
    assert 1 <= record.attempts < 10
