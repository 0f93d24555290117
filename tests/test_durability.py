"""The durability barrier (SMSQ_REDIS_WAIT_REPLICAS): nothing is acknowledged, and nothing is
posted to AllMySMS, before enough replicas have the write behind it.

A lone redis-server (the session's) has no replica, so ``WAIT 1`` always falls short there; a
primary with a real replica (started here) shows the other side: the moment an acknowledgment
is given, the replica already holds what it acknowledges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from redis import Redis
from redis.sentinel import SentinelConnectionPool
from starlette.applications import Starlette

from producers import keys
from producers.config import ProducerSettings
from producers.connection import connect, is_sentinel
from producers.durability import Barrier
from producers.enqueue import Producer
from producers.errors import ConfigError, NotReplicatedError
from producers.redis_errors import REDIS_UNAVAILABLE_ERRORS, NoReplicasError, url_address
from producers.states import State
from producers.store import MessageStore
from tests.helpers.gateway import PATH, gateway_settings, json_flux, post
from tests.helpers.processes import Workers, wait_for
from worker.admin.server import running
from worker.allmysms.client import AllMySmsClient
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.webhooks import webhook_routes
from worker.sandbox import SandboxProvider
from worker.send.reconciler import Reconciler
from worker.send.retries import send_retrying
from worker.send.sender import Sender
from worker.settings import Secret, Settings
from worker.store.control import Switch
from worker.store.ledger import Ledger


SHORT_MS = 50
"""A short WAIT timeout: on a lone primary every barrier falls short after it."""
SHORT = Barrier(1, SHORT_MS)
NOT_REPLICATED = (
    f"Redis took the write, but only 0 of 1 replicas confirmed it within {SHORT_MS} ms (WAIT, "
    "SMSQ_REDIS_WAIT_REPLICAS); it is not acknowledged: retrying with the same keys is safe, "
    "duplicates are ignored"
)
REPLICA_UP_S = 15.0


def request(key: str, **fields: object) -> dict[str, object]:
    return {"key": key, "to": ["+33612345678"], "text": "Bonjour", **fields}


def barrier_settings(url: str = "redis://127.0.0.1:6379/0") -> ProducerSettings:
    return ProducerSettings(redis_url=url, wait_replicas=1, wait_timeout_ms=SHORT_MS)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and one replica, replication up."""
    primary = RedisServer().start()
    replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(primary.port)]).start()
    wait_for(lambda: linked(primary), timeout_s=REPLICA_UP_S, what="the replica to sync")
    yield primary, replica
    replica.stop()
    primary.stop()


def linked(primary: RedisServer) -> bool:
    info = Redis.from_url(primary.url).info("replication")
    return bool(info.get("connected_slaves") == 1 and info["slave0"]["state"] == "online")


@pytest.fixture
def clients(pair: tuple[RedisServer, RedisServer]) -> Iterator[tuple[Redis, Redis]]:
    primary, replica = (Redis.from_url(server.url) for server in pair)
    primary.flushdb()
    primary.wait(1, 5000)
    yield primary, replica
    primary.close()
    replica.close()


# --- settings and the connection factory ---------------------------------------------------


def test_sentinel_settings_are_read_and_checked() -> None:
    settings = ProducerSettings.from_env(
        {
            "SMSQ_REDIS_SENTINELS": "10.0.0.5:26379, [fd00::7]:26380,",
            "SMSQ_REDIS_SENTINEL_MASTER": "sms",
            "SMSQ_REDIS_SENTINEL_PASSWORD": "sentinel-secret-1",
            "SMSQ_REDIS_SENTINEL_TLS": "1",
        }
    )
    assert settings.sentinels == (("10.0.0.5", 26379), ("fd00::7", 26380))
    assert (settings.sentinel_master, settings.sentinel_tls) == ("sms", True)
    assert settings.wait_replicas == 1  # the barrier is on by default in Sentinel mode
    assert "sentinel-secret-1" not in repr(settings)
    assert ProducerSettings.from_env({}).wait_replicas == 0  # and off on one primary


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SMSQ_REDIS_SENTINELS": "10.0.0.5"},
            "SMSQ_REDIS_SENTINELS: entry 1 must be host:port, e.g. 10.0.0.5:26379",
        ),
        (
            {"SMSQ_REDIS_SENTINELS": "a:1,b:http"},
            "SMSQ_REDIS_SENTINELS: entry 2 has a port that is not a number 1-65535",
        ),
        (
            {"SMSQ_REDIS_SENTINELS": "a:1", "SMSQ_REDIS_WAIT_REPLICAS": "0"},
            "SMSQ_REDIS_WAIT_REPLICAS: must be at least 1 with SMSQ_REDIS_SENTINELS: Sentinel's "
            "replication is asynchronous, so a failover without the barrier loses acknowledged "
            "writes",
        ),
        ({"SMSQ_REDIS_WAIT_TIMEOUT_MS": "0"}, "SMSQ_REDIS_WAIT_TIMEOUT_MS: must be at least 1"),
        ({"SMSQ_REDIS_WAIT_AOF": "maybe"}, "SMSQ_REDIS_WAIT_AOF: must be true or false"),
    ],
)
def test_bad_sentinel_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ProducerSettings.from_env(env)
    assert str(caught.value) == message


def test_sentinel_mode_takes_the_data_nodes_credentials_from_redis_url() -> None:
    settings = ProducerSettings(
        redis_url="rediss://smsq:node-secret@ignored.example:6380/3",
        sentinels=(("127.0.0.1", 26379),),
        sentinel_master="sms",
        sentinel_password="sentinel-secret",  # noqa: S106 - a test value
        wait_replicas=1,
    )
    client = connect(settings)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert is_sentinel(client)
    assert pool.service_name == "sms"
    assert (pool.connection_kwargs["username"], pool.connection_kwargs["db"]) == ("smsq", 3)
    assert pool.connection_kwargs["password"] == "node-secret"  # noqa: S105 - a test value
    assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert sentinel["password"] == "sentinel-secret"  # noqa: S105 - a test value
    assert url_address(settings) == "the primary of Sentinel master 'sms'"
    assert not is_sentinel(connect(ProducerSettings()))


# --- producers -------------------------------------------------------------------------------


def test_an_enqueue_no_replica_confirmed_is_not_acknowledged_even_as_a_duplicate(
    redis: Redis, redis_server: RedisServer
) -> None:
    producer = Producer(redis, barrier_settings(redis_server.url))
    with pytest.raises(NotReplicatedError) as caught:
        producer.enqueue(request("otp-1"))
    assert str(caught.value) == NOT_REPLICATED
    assert (caught.value.confirmed, caught.value.required) == (0, 1)
    # The write is on the primary; asking again must not turn it into "accepted" either.
    with pytest.raises(NotReplicatedError):
        producer.enqueue(request("otp-1"))
    plain = Producer(redis, ProducerSettings(redis_url=redis_server.url)).enqueue(request("otp-1"))
    assert (plain.duplicate, plain.state) == (True, State.QUEUED)


def test_a_big_pipelined_batch_waits_too(redis: Redis, redis_server: RedisServer) -> None:
    batch = [request(f"b-{n}", to=[f"+336{n:08d}" for n in range(150)]) for n in range(4)]
    with pytest.raises(NotReplicatedError) as caught:
        Producer(redis, barrier_settings(redis_server.url)).enqueue_many(batch)
    assert str(caught.value) == NOT_REPLICATED


def test_an_acknowledged_enqueue_is_already_on_the_replica(
    pair: tuple[RedisServer, RedisServer], clients: tuple[Redis, Redis]
) -> None:
    primary, replica = clients
    settings = ProducerSettings(redis_url=pair[0].url, wait_replicas=1, wait_timeout_ms=5000)
    producer = Producer(primary, settings)
    single = producer.enqueue(request("ack-1"))
    batch = producer.enqueue_many(
        [request(f"ack-b{n}", to=[f"+336{n:08d}" for n in range(150)]) for n in range(4)]
    )
    # Read the replica at once: WAIT returned only after it had every write.
    assert replica.hget(keys.message(single.message_id), "state") == b"queued"
    for enqueued in batch:
        assert replica.hget(keys.message(enqueued.message_id), "state") == b"queued"  # type: ignore[union-attr]
    assert replica.llen("rq:queue:smsq-default") == 5


def test_the_barrier_loads_its_script_again_after_a_script_flush(redis: Redis) -> None:
    """A new primary after a failover has an empty script cache (NOSCRIPT)."""
    script = redis.register_script("return redis.call('INCR', KEYS[1])")
    barrier = Barrier(0, SHORT_MS)  # on a lone primary: WAIT 0 returns at once
    barrier.replicas = 0
    assert barrier.run_script(redis, script, ["n"]) == 1
    on = Barrier(1, SHORT_MS)
    redis.script_flush()
    with pytest.raises(NotReplicatedError) as caught:
        on.run_script(redis, script, ["n"])
    assert caught.value.answer == 2  # reloaded and run once, then WAIT fell short
    assert redis.get("n") == b"2"


def test_noreplicas_is_a_read_only_refusal_waited_out(redis_server: RedisServer) -> None:
    server = RedisServer(extra_args=["--min-replicas-to-write", "1"]).start()
    try:
        client = Redis.from_url(server.url)
        with pytest.raises(NoReplicasError) as caught:
            client.set("x", "1")
        assert isinstance(caught.value, REDIS_UNAVAILABLE_ERRORS)
        assert str(caught.value) == "Not enough good replicas to write."
    finally:
        server.stop()


# --- the worker: no POST before the claim is durable ---------------------------------------


def counting_sender(redis: Redis, barrier: Barrier, posts: list[httpx.Request]) -> Sender:
    def answer(sent: httpx.Request) -> httpx.Response:
        posts.append(sent)
        return httpx.Response(
            200,
            json={
                "status": 100,
                "statusText": "ok",
                "smsIds": [{"phoneNumber": "33612345678", "smsId": "s-1"}],
            },
        )

    settings = Settings.from_env({"ALLMYSMS_LOGIN": "me", "ALLMYSMS_API_KEY": "key-1"})
    return Sender(
        ledger=Ledger(redis, ttl_s=3600, worker_name="w-barrier", barrier=barrier),
        client=AllMySmsClient(
            base_url="http://allmysms.test/http/9.0",
            login="me",
            api_key=Secret("key-1"),
            timeout=httpx.Timeout(5),
            transport=httpx.MockTransport(answer),
        ),
        retrying=partial(send_retrying, settings),
        switch=Switch(redis),
    )


def test_an_unconfirmed_claim_posts_nothing_and_gives_the_message_back(
    redis: Redis, producer: Producer, store: MessageStore
) -> None:
    enqueued = producer.enqueue(request("claim-1"))
    posts: list[httpx.Request] = []

    result = counting_sender(redis, SHORT, posts).send(enqueued.message_id)

    assert (result.state, posts) == ("released", [])
    record = store.get("claim-1")
    assert record is not None
    assert record.state is State.QUEUED
    assert record.history[-1]["reason"] == (
        "claim not confirmed by 1 replica(s) (SMSQ_REDIS_WAIT_REPLICAS); nothing was sent, requeued"
    )
    assert redis.zcard(keys.SENDING) == 0
    # Given back whole: a sender whose claims are confirmed sends it, once.
    again = counting_sender(redis, Barrier(), posts).send(enqueued.message_id)
    assert (again.state, len(posts)) == ("sent", 1)


def test_a_confirmed_claim_is_sent_once_with_a_replica(
    pair: tuple[RedisServer, RedisServer], clients: tuple[Redis, Redis]
) -> None:
    primary, replica = clients
    enqueued = Producer(primary).enqueue(request("claim-2"))
    posts: list[httpx.Request] = []
    result = counting_sender(primary, Barrier(1, 5000), posts).send(enqueued.message_id)
    assert (result.state, len(posts)) == ("sent", 1)
    assert replica.hget(keys.message(enqueued.message_id), "state") == b"sent"


def test_a_pause_is_acknowledged_only_once_replicated(
    redis: Redis, clients: tuple[Redis, Redis]
) -> None:
    with pytest.raises(NotReplicatedError):
        Switch(redis, barrier=SHORT).pause("bulk", reason="maintenance", by="ops")
    primary, replica = clients
    Switch(primary, barrier=Barrier(1, 5000)).pause("bulk", reason="maintenance", by="ops")
    assert replica.hexists(keys.PAUSED, "bulk")
    assert Switch(primary, barrier=Barrier(1, 5000)).resume("bulk", by="ops") == ["bulk"]
    assert not replica.hexists(keys.PAUSED, "bulk")


# --- HTTP: the gateway and the receipts webhook say "try again" -----------------------------


def test_the_gateway_answers_503_not_100_when_the_enqueue_is_not_replicated(
    redis: Redis, redis_server: RedisServer
) -> None:
    base = gateway_settings(redis_server.url)
    settings = Settings(producer=barrier_settings(redis_server.url), producers=base.producers)
    with running(create_app(settings, redis)) as url:
        answer = post(url + PATH, json_flux(), headers={"Idempotency-Key": "gw-durable-1"})
        again = post(url + PATH, json_flux(), headers={"Idempotency-Key": "gw-durable-1"})
    for response in (answer, again):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert '"status": 100' not in response.text


def test_the_receipts_webhook_answers_200_only_after_the_barrier(
    redis: Redis, redis_server: RedisServer
) -> None:
    secret = "wh-" + "5e8d1c2b" * 5
    receipt = {"smsId": "s-unknown", "status": "1", "phoneNumber": "33612345678"}
    for barrier, status in ((barrier_settings(redis_server.url), 503), (ProducerSettings(), 200)):
        settings = Settings(producer=barrier, webhook_secret=Secret(secret))
        app = Starlette(routes=webhook_routes(settings, redis))
        with running(app) as url:
            response = httpx.post(f"{url}/webhooks/allmysms/{secret}/receipts", data=receipt)
        assert response.status_code == status, response.text


# --- real worker processes -------------------------------------------------------------------


def test_a_worker_posts_nothing_until_a_replica_confirms_its_claim(
    workers: Workers, sandbox: SandboxProvider, tmp_path: Path
) -> None:
    primary = RedisServer().start()
    replica: RedisServer | None = None
    try:
        client = Redis.from_url(primary.url)
        Producer(client).enqueue(request("wait-1", campaign="wait-1"))
        proc = workers.start(
            REDIS_URL=primary.url, SMSQ_REDIS_WAIT_REPLICAS="1", SMSQ_REDIS_WAIT_TIMEOUT_MS="200"
        )
        log = Path(tmp_path / "worker-0.log")
        wait_for(
            lambda: log.read_text().count('"sms.send.not_durable"') >= 2,
            what="the worker to give its unconfirmed claim back twice",
        )
        assert sandbox.requests() == []
        # It goes round claim -> not confirmed -> given back, never further.
        state = client.hget(keys.message(keys.message_id("wait-1")), "state")
        assert state in (b"queued", b"sending")
        assert proc.poll() is None

        replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(primary.port)]).start()
        store = MessageStore(client)
        wait_for(
            lambda: (r := store.get("wait-1")) is not None and r.state is State.SENT,
            what="the send once a replica confirms",
        )
        assert len(sandbox.requests()) == 1
        events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        given_back = [e for e in events if e.get("event") == "sms.send.not_durable"]
        assert {(e["confirmed"], e["required"]) for e in given_back} == {(0, 1)}
        time.sleep(0.5)
        assert len(sandbox.requests()) == 1
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()


def test_a_live_workers_claims_left_behind_by_a_failover_are_settled_by_itself(
    redis: Redis, producer: Producer, store: MessageStore
) -> None:
    """A give-back or an outcome that reached the old primary only leaves a claim of a live
    worker on the new one: the worker settles it at its next reconcile pass, not minutes later."""
    ids = {key: producer.enqueue(request(key)).message_id for key in ("held", "posted", "busy")}
    ledger = Ledger(redis, ttl_s=3600, worker_name="w-me")
    ledger.claim(ids["held"], hold=True)
    ledger.claim(ids["posted"])
    ledger.claim(ids["busy"])
    redis.zadd(keys.SENDING, {mid: time.time() - 60 for mid in ids.values()})
    other = Ledger(redis, ttl_s=3600, worker_name="w-other")
    producer.enqueue(request("theirs"))
    other.claim(keys.message_id("theirs"))
    redis.zadd(keys.SENDING, {keys.message_id("theirs"): time.time() - 60})
    reconciler = Reconciler(redis, ledger, [], dead_after_s=30, interval_s=1, stale_after_s=600)

    assert reconciler.own_orphans(lambda: frozenset({ids["busy"]})) == (1, 1)

    states = {key: store.get(key).state for key in ("held", "posted", "busy", "theirs")}  # type: ignore[union-attr]
    assert states == {
        "held": State.QUEUED,
        "posted": State.UNKNOWN,
        "busy": State.SENDING,
        "theirs": State.SENDING,
    }
    record = store.get("posted")
    assert record is not None
    assert record.error == "outcome lost in a Redis failover"
    assert reconciler.own_orphans(lambda: frozenset({ids["busy"]})) == (0, 0)


NO_WAITAOF = (
    "SMSQ_REDIS_WAIT_AOF: this Redis server has no WAITAOF (Redis >= 7.2 or Valkey has it); "
    "set it to false to wait with WAIT"
)


def has_waitaof(redis: Redis) -> bool:
    major, minor = (int(n) for n in str(redis.info("server")["redis_version"]).split(".")[:2])
    return (major, minor) >= (7, 2)


def test_waitaofs_answer_counts_the_replicas_that_fsynced() -> None:
    barrier = Barrier(1, SHORT_MS, aof=True)
    assert barrier.wait_command() == ["WAITAOF", 0, 1, SHORT_MS]
    barrier.check([1, 1])  # [local fsyncs, replicas' fsyncs]
    with pytest.raises(NotReplicatedError) as caught:
        barrier.check([1, 0])
    assert str(caught.value) == NOT_REPLICATED.replace("(WAIT,", "(WAITAOF,")


def test_wait_aof_on_a_server_without_waitaof_is_a_clear_config_error(
    redis: Redis, redis_server: RedisServer, workers: Workers
) -> None:
    settings = ProducerSettings(
        redis_url=redis_server.url, wait_replicas=1, wait_timeout_ms=SHORT_MS, wait_aof=True
    )
    producer = Producer(redis, settings)
    one = [request("aof-1")]
    batch = [request(f"aof-b-{n}", to=[f"+336{n:08d}" for n in range(150)]) for n in range(4)]
    worker = workers.smsq(
        "worker", "--burst", SMSQ_REDIS_WAIT_REPLICAS="1", SMSQ_REDIS_WAIT_AOF="true"
    )
    if has_waitaof(redis):  # the suite's server is newer than Debian 12's 7.0
        Barrier(1, SHORT_MS, aof=True).check_server(redis)
        with pytest.raises(NotReplicatedError):  # a lone primary: no replica fsynced
            producer.enqueue_many(one)
        return
    for attempt in (
        lambda: Barrier(1, SHORT_MS, aof=True).check_server(redis),
        lambda: producer.enqueue_many(one),
        lambda: producer.enqueue_many(batch),  # the pipelined path
        lambda: Barrier(1, SHORT_MS, aof=True).confirm(redis),
    ):
        with pytest.raises(ConfigError) as caught:
            attempt()
        assert str(caught.value) == NO_WAITAOF
    Barrier(1, SHORT_MS).check_server(redis)  # WAIT: nothing to check
    Barrier(0, SHORT_MS, aof=True).check_server(redis)  # barrier off
    gateway = workers.smsq(
        "gateway",
        "--port",
        "0",
        SMSQ_PRODUCERS='[{"login": "shop", "api_key": "change-me-0123456789"}]',
        SMSQ_REDIS_WAIT_REPLICAS="1",
        SMSQ_REDIS_WAIT_AOF="true",
    )
    for started in (worker, gateway):
        assert (started.returncode, started.stderr.splitlines()[-1]) == (
            2,
            f"smsq: configuration error: {NO_WAITAOF}",
        )
