"""Crash, restart and shutdown: every accepted message ends in exactly one terminal state and
reaches AllMySMS at most once, through kill -9 at each step of a send.

Crash points (``SMSQ_CRASH_AT``) make a real worker process ``os._exit(137)`` at a chosen step;
other scenarios kill real processes. A second, healthy worker then cleans up. Liveness knobs
are shrunk so that each scenario takes a few seconds.
"""

from __future__ import annotations

import signal
import subprocess
import time
from functools import partial
from typing import Any

import httpx
import pytest
from redis import Redis

from producers.enqueue import Producer
from producers.keys import message_id
from producers.states import State
from producers.store import MessageStore
from tests.helpers import invariants
from tests.helpers.crashes import FAST, terminal
from tests.helpers.processes import Workers, wait_for
from worker.allmysms.client import AllMySmsClient
from worker.cli.text import render_status
from worker.dev.redis_server import RedisServer
from worker.sandbox import SandboxProvider
from worker.send.lanes import Lanes, Taken
from worker.send.reconciler import Reconciler
from worker.send.retries import send_retrying
from worker.send.runner import lane_queues
from worker.send.sender import Sender
from worker.settings import Secret, Settings
from worker.store.control import Switch
from worker.store.ledger import Ledger


def take_one(redis: Redis) -> Taken:
    """Take the next job the way a worker does: into its lane's intermediate list."""
    queues = lane_queues(redis)
    [taken] = Lanes(
        redis, [q.key for q in queues], [q.name.removeprefix("smsq-") for q in queues]
    ).take(1)
    return taken


def enqueue(producer: Producer, *keys: str, **fields: Any) -> list[str]:
    producer.enqueue_many(
        [
            {"key": key, "campaign": key, "text": f"msg {key}", "to": ["0612345678"], **fields}
            for key in keys
        ]
    )
    return list(keys)


def settle(workers: Workers, store: MessageStore, keys: list[str], **env: str) -> None:
    """Run a healthy worker until every key is terminal."""
    workers.start(**FAST, **env)
    wait_for(lambda: terminal(store, *keys), what="every message to end")


@pytest.mark.parametrize(
    ("point", "state", "requests"),
    [
        ("after_dequeue", State.SENT, 1),
        ("after_start", State.SENT, 1),
        ("after_claim", State.UNKNOWN, 0),
        ("after_send", State.UNKNOWN, 1),
    ],
)
def test_worker_killed_at_each_step_of_a_send(
    point: str,
    state: State,
    requests: int,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """Before the claim the message is requeued and sent once; after it, it ends unknown."""
    keys = enqueue(producer, "m1")
    crashed = workers.run_burst(**FAST, SMSQ_CRASH_AT=point)
    assert crashed.returncode == 137, crashed.log

    settle(workers, store, keys)

    verdict = invariants.check(store, sandbox, keys)
    assert verdict.problems == []
    assert verdict.states == {"m1": state}
    assert verdict.requests["m1"] == requests
    if state is State.UNKNOWN:
        record = store.get("m1")
        assert record is not None
        assert record.error == "worker died during the send"
        assert [d.key for d in store.dead_letters()] == ["m1"]


def test_poison_message_is_never_sent_again_by_a_second_worker(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A message whose send killed its worker is not retried by the next worker or a re-enqueue."""
    keys = enqueue(producer, "poison")
    workers.run_burst(**FAST, SMSQ_CRASH_AT="after_send")
    settle(workers, store, keys)

    again = producer.enqueue(
        {"key": "poison", "campaign": "poison", "text": "msg poison", "to": ["0612345678"]}
    )
    time.sleep(0.5)

    assert (again.duplicate, again.state) == (True, State.UNKNOWN)
    assert invariants.check(store, sandbox, keys).requests["poison"] == 1


def test_kill_9_during_an_in_flight_request_ends_unknown(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A worker SIGKILLed while AllMySMS is answering slowly: one request, state unknown."""
    sandbox.add_fault({"action": "delay", "delay_ms": 3000})
    keys = enqueue(producer, "slow")
    victim = workers.start(**FAST)
    wait_for(lambda: len(sandbox.requests()) == 1, what="the request to reach the sandbox")

    victim.send_signal(signal.SIGKILL)
    victim.wait()
    settle(workers, store, keys)

    verdict = invariants.check(store, sandbox, keys)
    assert verdict.problems == []
    assert (verdict.states, verdict.requests["slow"]) == ({"slow": State.UNKNOWN}, 1)


def test_dead_worker_is_detected_within_the_bound(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """With SMSQ_WORKER_DEAD_AFTER_S=1.5 the in-flight send of a dead worker ends in < 5 s."""
    sandbox.add_fault({"action": "delay", "delay_ms": 10_000})
    keys = enqueue(producer, "bound")
    victim = workers.start(**FAST)
    wait_for(lambda: len(sandbox.requests()) == 1, what="the request")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    workers.start(**FAST)

    wait_for(lambda: terminal(store, *keys), timeout_s=10, what="the unknown state")

    assert time.monotonic() - killed_at < 5
    record = store.get("bound")
    assert record is not None
    assert record.state is State.UNKNOWN


def test_warm_shutdown_finishes_the_current_send(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """SIGTERM during a send lets it finish: state sent, one request, exit code 0. One send
    slot, so "next" is not in flight yet; nothing new is taken after the signal."""
    sandbox.add_fault({"action": "delay", "delay_ms": 1500})
    enqueue(producer, "warm", "next")
    worker = workers.start(**FAST, SMSQ_SEND_SLOTS="1")
    wait_for(lambda: len(sandbox.requests()) == 1, what="the request")

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=15) == 0
    record = store.get("warm")
    assert record is not None
    assert record.state is State.SENT
    next_record = store.get("next")
    assert next_record is not None
    assert next_record.state is State.QUEUED
    assert len(sandbox.requests()) == 1


def test_second_signal_records_the_in_flight_send_as_unknown(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A cold shutdown (second SIGTERM) mid-send records 'unknown' itself; nothing is lost."""
    sandbox.add_fault({"action": "delay", "delay_ms": 6000})
    keys = enqueue(producer, "cold")
    worker = workers.start(**FAST)
    wait_for(lambda: len(sandbox.requests()) == 1, what="the request")

    worker.send_signal(signal.SIGTERM)
    time.sleep(1.2)  # RQ ignores a second signal within one second of the first
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=10)

    record = store.get("cold")
    assert record is not None
    assert (record.state, record.error) == (State.UNKNOWN, "SystemExit")
    assert invariants.check(store, sandbox, keys).problems == []


def test_warm_shutdown_finishes_every_send_in_flight_and_takes_no_more(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Three slots busy on SIGTERM: all three finish ``sent``; the fourth message stays queued."""
    sandbox.add_fault({"action": "delay", "delay_ms": 1500, "times": 3})
    enqueue(producer, "w1", "w2", "w3", "w4")
    worker = workers.start(**FAST, SMSQ_SEND_SLOTS="3")
    wait_for(lambda: len(sandbox.requests()) == 3, what="three requests in flight")

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=15) == 0
    states = {key: store.get(key).state for key in ("w1", "w2", "w3", "w4")}  # type: ignore[union-attr]
    assert sorted(states.values()) == sorted([State.SENT] * 3 + [State.QUEUED])
    assert len(sandbox.requests()) == 3


def test_cold_shutdown_records_every_send_in_flight_as_unknown(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Three sends in flight and a second signal: each is recorded ``unknown`` at once."""
    sandbox.add_fault({"action": "delay", "delay_ms": 6000, "times": 3})
    keys = enqueue(producer, "c1", "c2", "c3")
    worker = workers.start(**FAST, SMSQ_SEND_SLOTS="3")
    wait_for(lambda: len(sandbox.requests()) == 3, what="three requests in flight")

    worker.send_signal(signal.SIGTERM)
    time.sleep(1.2)  # RQ ignores a second signal within one second of the first
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=4)

    for key in keys:
        record = store.get(key)
        assert record is not None
        assert (record.state, record.error) == (State.UNKNOWN, "SystemExit")
    assert invariants.check(store, sandbox, keys).problems == []


def test_supervisor_restarts_a_killed_worker(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """``--processes 2``: a worker killed with SIGKILL is replaced and the lanes keep draining."""
    supervisor = workers.start("--processes", "2", **FAST)
    wait_for(lambda: len(_children(supervisor.pid)) == 2, what="two workers")
    victim = _children(supervisor.pid)[0]

    subprocess.run(["kill", "-9", str(victim)], check=True)
    wait_for(
        lambda: len(_children(supervisor.pid)) == 2 and victim not in _children(supervisor.pid),
        what="a replacement worker",
    )
    keys = enqueue(producer, *(f"after-{i}" for i in range(10)))

    wait_for(lambda: terminal(store, *keys), what="the messages")
    assert invariants.check(store, sandbox, keys).problems == []
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=15) == 0


def test_stop_during_a_restart_delay_leaves_no_worker_behind(
    redis: Redis, workers: Workers
) -> None:
    """SIGTERM while the supervisor waits to restart a killed worker: it restarts nothing and
    exits 0, and no worker process is left running."""
    supervisor = workers.start("--processes", "2", **FAST)
    wait_for(lambda: redis.scard("rq:workers") == 2, what="two registered workers")
    victim = _children(supervisor.pid)[0]

    subprocess.run(["kill", "-9", str(victim)], check=True)
    time.sleep(0.5)  # the supervisor has seen the death and waits RESTART_DELAY_S (1 s)
    supervisor.send_signal(signal.SIGTERM)

    assert supervisor.wait(timeout=15) == 0
    left = subprocess.run(
        ["pgrep", "-g", str(supervisor.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert left == []


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def test_redis_kill_9_with_aof_loses_no_queued_message(
    store: MessageStore, sandbox: SandboxProvider, workers: Workers, redis: Redis
) -> None:
    """50 queued messages survive kill -9 of redis-server (appendonly yes) and go out once."""
    server = RedisServer(appendonly=True).start()
    try:
        client = Redis.from_url(server.url)
        keys = enqueue(Producer(client), *(f"aof-{i}" for i in range(50)))
        server.kill()
        server = RedisServer(port=server.port, directory=server.directory, appendonly=True).start()
        workers.redis_url = server.url
        workers.run_burst()
        verdict = invariants.check(MessageStore(client), sandbox, keys)
    finally:
        server.stop()
    assert verdict.problems == []
    assert verdict.count(State.SENT) == 50


def test_redis_down_during_a_send_still_records_the_outcome(
    sandbox: SandboxProvider, workers: Workers, redis: Redis
) -> None:
    """Redis dies while the request is in flight and comes back: one request, state sent."""
    server = RedisServer(appendonly=True).start()
    try:
        client = Redis.from_url(server.url)
        keys = enqueue(Producer(client), "blip")
        sandbox.add_fault({"action": "delay", "delay_ms": 1500})
        workers.redis_url = server.url
        workers.start(**FAST)
        wait_for(lambda: len(sandbox.requests()) == 1, what="the request")
        server.kill()
        time.sleep(2.0)
        server = RedisServer(port=server.port, directory=server.directory, appendonly=True).start()
        client = Redis.from_url(server.url)
        wait_for(lambda: terminal(MessageStore(client), *keys), what="the outcome")
        verdict = invariants.check(MessageStore(client), sandbox, keys)
    finally:
        workers.stop_all()
        server.stop()
    assert verdict.problems == []
    assert (verdict.states, verdict.requests["blip"]) == ({"blip": State.SENT}, 1)


def test_multi_lane_dequeue_keeps_the_job_in_an_intermediate_list(
    redis: Redis, producer: Producer
) -> None:
    """Plain rq pops multi-queue jobs with BLPOP and keeps no trace; smsq's lanes LMOVE them."""
    enqueue(producer, "traced", lane="bulk")

    taken = take_one(redis)

    assert (taken.job_id, taken.queue_key) == (f"smsq-{message_id('traced')}", "rq:queue:smsq-bulk")
    assert redis.lrange("rq:queue:smsq-bulk:intermediate", 0, -1) == [taken.job_id.encode()]
    assert redis.llen("rq:queue:smsq-bulk") == 0


def test_send_outliving_its_timeout_ends_unknown_even_with_a_live_worker(
    producer: Producer, store: MessageStore, redis: Redis
) -> None:
    """A claim older than any send can take (outcome write refused by Redis, say) is settled."""
    enqueue(producer, "stale")
    ledger = Ledger(redis, ttl_s=3600, worker_name="alive-worker")
    redis.set("smsq:alive:alive-worker", "1")
    assert ledger.claim(message_id("stale")).outcome == "claimed"
    redis.zadd("smsq:sending", {message_id("stale"): time.time() - 100})

    report = Reconciler(
        redis, ledger, lane_queues(redis), dead_after_s=30, interval_s=10, stale_after_s=60
    ).run()

    assert report.unknown == 1
    record = store.get("stale")
    assert record is not None
    assert (record.state, record.error) == (State.UNKNOWN, "send outlived its timeout")


def test_job_whose_message_record_expired_becomes_a_dead_letter(
    producer: Producer,
    store: MessageStore,
    redis: Redis,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """A job that outlived its message record (TTL or purge) sends nothing and is visible."""
    enqueue(producer, "gone")
    redis.delete(f"smsq:msg:{message_id('gone')}")

    workers.run_burst()

    assert sandbox.requests() == []
    [letter] = store.dead_letters()
    assert (letter.kind, letter.message_id) == ("job", message_id("gone"))
    assert letter.reason == (
        "message record expired or was purged before the send; nothing was sent"
    )


def test_a_held_claim_is_released_unsent_and_its_holder_then_posts_nothing(
    producer: Producer, store: MessageStore, redis: Redis
) -> None:
    """A claim taken to wait for a rate-limit turn can be given back while it waits: the message
    is queued again at the front of its lane as exactly one fresh job, and the holder, when its
    turn comes, learns it must not post."""
    enqueue(producer, "held", "behind")
    mid = message_id("held")
    job_id = take_one(redis).job_id
    assert job_id == f"smsq-{mid}"
    holder = Ledger(redis, ttl_s=3600, worker_name="w-held")
    assert holder.claim(mid, hold=True).outcome == "claimed"
    assert redis.hget(f"smsq:msg:{mid}", "awaiting_turn") == b"w-held"

    reconciler = Ledger(redis, ttl_s=3600, worker_name="reconciler")
    assert reconciler.release(mid, holder="w-someone-else", reason="r", actor="a") is None
    new_job = reconciler.release(
        mid, holder="w-held", actor="reconciler", reason="waited; nothing was sent, requeued"
    )

    assert new_job == f"smsq-{mid}-r1"
    assert holder.start_posting(mid) is False
    record = store.get("held")
    assert record is not None
    assert record.state is State.QUEUED
    assert record.history[-1]["reason"] == "waited; nothing was sent, requeued"
    assert redis.lrange("rq:queue:smsq-default", 0, -1) == [
        new_job.encode(),
        f"smsq-{message_id('behind')}".encode(),
    ]
    assert redis.lrange("rq:queue:smsq-default:intermediate", 0, -1) == []
    assert not redis.exists(f"rq:job:{job_id}")
    assert not redis.hexists(f"smsq:msg:{mid}", "awaiting_turn")
    assert redis.zscore("smsq:sending", mid) is None


def test_a_give_back_run_twice_keeps_the_job_the_first_one_made(
    producer: Producer, store: MessageStore, redis: Redis
) -> None:
    """Under the durability barrier a give-back whose WAIT fell short still took effect; run
    again (found in a Sentinel soak), it deleted the fresh job's hash and left the message
    ``queued`` with no job to send it. Now the second run touches nothing."""
    enqueue(producer, "twice")
    mid = message_id("twice")
    take_one(redis)
    holder = Ledger(redis, ttl_s=3600, worker_name="w-twice")
    assert holder.claim(mid, hold=True).outcome == "claimed"
    gives = [
        holder.release(mid, holder="w-twice", actor="w", reason="not confirmed", unposted=True)
        for _ in range(2)
    ]

    assert gives == [f"smsq-{mid}-r1", f"smsq-{mid}-r1"]
    assert redis.lrange("rq:queue:smsq-default", 0, -1) == [f"smsq-{mid}-r1".encode()]
    assert redis.hget(f"rq:job:smsq-{mid}-r1", "origin") == b"smsq-default"
    record = store.get("twice")
    assert record is not None
    assert [h["state"] for h in record.history] == ["queued", "sending", "queued"]
    # Taken, claimed and given back again; a reconciler's release of it queued is refused.
    assert take_one(redis).job_id == f"smsq-{mid}-r1"
    assert holder.claim(mid, hold=True).outcome == "claimed"
    assert holder.release(mid, holder="w-twice", actor="w", reason="again", unposted=True) == (
        f"smsq-{mid}-r2"
    )
    assert holder.release(mid, holder="w-twice", actor="reconciler", reason="r") is None
    assert redis.exists(f"rq:job:smsq-{mid}-r2") == 1
    assert redis.lrange("rq:queue:smsq-default", 0, -1) == [f"smsq-{mid}-r2".encode()]


def test_a_job_whose_message_is_still_queued_here_goes_back_to_its_lane(
    producer: Producer, redis: Redis
) -> None:
    """During a failover one process talks to two primaries: a claim answered by the demoted
    one ("not queued") must not make the new one drop the job its queued message needs."""
    enqueue(producer, "needed", "parked", "sent")
    queues = lane_queues(redis)
    lanes = Lanes(redis, [q.key for q in queues], [q.name.removeprefix("smsq-") for q in queues])
    needed, parked, sent = (take_one(redis) for _ in range(3))
    ledger = Ledger(redis, ttl_s=3600, worker_name="w-done")
    redis.zadd("smsq:later", {message_id("parked"): time.time() + 60})
    assert ledger.claim(message_id("sent")).outcome == "claimed"

    assert [lanes.done(t) for t in (needed, parked, sent)] == [False, True, True]
    assert redis.lrange("rq:queue:smsq-default", 0, -1) == [needed.job_id.encode()]
    assert redis.llen("rq:queue:smsq-default:intermediate") == 0
    assert [redis.exists(f"rq:job:{t.job_id}") for t in (needed, parked, sent)] == [1, 0, 0]


def test_a_claim_whose_holder_started_posting_is_never_released(
    producer: Producer, store: MessageStore, redis: Redis
) -> None:
    """Once the holder's turn came and it started posting, the request may reach AllMySMS: the
    claim can only be settled as before (unknown if the worker dies), never given back."""
    enqueue(producer, "posting")
    mid = message_id("posting")
    holder = Ledger(redis, ttl_s=3600, worker_name="w-post")
    assert holder.claim(mid, hold=True).outcome == "claimed"
    waiting = store.get("posting")
    assert waiting is not None
    assert (waiting.waiting_for_rate_limit, waiting.as_dict()["waiting_for_rate_limit"]) == (
        True,
        True,
    )
    assert (
        "state:      sending (waiting for its rate-limit turn; nothing posted yet)"
        in render_status(waiting)
    )

    assert holder.start_posting(mid) is True
    assert holder.start_posting(mid) is False  # the hold is gone: only the first may start

    assert holder.release(mid, holder="w-post", reason="r", actor="a") is None
    record = store.get("posting")
    assert record is not None
    assert (record.state, record.waiting_for_rate_limit) == (State.SENDING, False)
    assert "waiting_for_rate_limit" not in record.as_dict()
    assert "state:      sending\n" in render_status(record)


def test_a_claim_without_hold_is_never_released(
    producer: Producer, store: MessageStore, redis: Redis
) -> None:
    """Without the rate limit nothing marks a claim unposted, so nothing can give it back."""
    enqueue(producer, "plain")
    mid = message_id("plain")
    ledger = Ledger(redis, ttl_s=3600, worker_name="w-plain")
    assert ledger.claim(mid).outcome == "claimed"

    assert not redis.hexists(f"smsq:msg:{mid}", "awaiting_turn")
    assert ledger.release(mid, holder="w-plain", reason="r", actor="a") is None
    assert store.get("plain").state is State.SENDING  # type: ignore[union-attr]


def test_every_state_change_drops_the_hold(producer: Producer, redis: Redis) -> None:
    """A requeue (nothing sent) or an outcome removes ``awaiting_turn``: a later claim without
    the rate limit must not inherit a stale hold that would let a posted send be given back."""
    enqueue(producer, "requeued", "finished")
    ledger = Ledger(redis, ttl_s=3600, worker_name="w-drop")
    for key in ("requeued", "finished"):
        assert ledger.claim(message_id(key), hold=True).outcome == "claimed"
    ledger.requeue(
        message_id("requeued"), allowed=frozenset({State.SENDING}), reason="r", actor="a"
    )
    assert ledger.finish(
        message_id("finished"),
        State.SENT,
        {},
        reason="100",
        record={"key": "finished", "lane": "default", "job_id": "j"},
    )

    for key in ("requeued", "finished"):
        assert not redis.hexists(f"smsq:msg:{message_id(key)}", "awaiting_turn")


def test_worker_killed_while_sends_wait_for_their_rate_limit_turn_loses_and_repeats_nothing(
    producer: Producer,
    store: MessageStore,
    redis: Redis,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """At 0.5 segment/s, one message goes at once and three wait their turn, claimed. kill -9:
    the three go back to their lane unsent (not ``unknown``) and a second worker sends each
    exactly once."""
    keys = enqueue(producer, "t1", "t2", "t3", "t4")
    victim = workers.start(
        **FAST, SMSQ_RATE_LIMIT_SEGMENTS_PER_S="0.5", SMSQ_RATE_LIMIT_BURST_SEGMENTS="1"
    )
    # The first send's outcome recorded (not only its request logged by the sandbox: a kill
    # before the record would rightly leave it `unknown`), and three claims waiting.
    wait_for(
        lambda: [store.get(k).state for k in keys].count(State.SENT) == 1,  # type: ignore[union-attr]
        what="the first send's outcome",
    )
    wait_for(
        lambda: (
            sum(bool(redis.hexists(f"smsq:msg:{message_id(k)}", "awaiting_turn")) for k in keys)
            == 3
        ),
        what="three claims waiting for their turn",
    )

    victim.send_signal(signal.SIGKILL)
    victim.wait()
    settle(workers, store, keys, SMSQ_RATE_LIMIT_SEGMENTS_PER_S="0")

    verdict = invariants.check(store, sandbox, keys)
    assert verdict.problems == []
    assert verdict.states == dict.fromkeys(keys, State.SENT)
    assert verdict.requests == dict.fromkeys(keys, 1)
    released = {
        key
        for key in keys
        for entry in store.get(key).history  # type: ignore[union-attr]
        if entry.get("by") == "reconciler"
        and entry["reason"].endswith(
            "stopped while waiting for its rate-limit turn; nothing was sent, requeued"
        )
    }
    assert len(released) == 3


def test_the_outcome_script_drops_the_finished_job_even_if_settled_elsewhere(
    producer: Producer, redis: Redis
) -> None:
    """Recording the outcome also removes the job from its intermediate list and deletes its
    hash; when the reconciler settled the message first, the job goes all the same."""
    enqueue(producer, "done", "settled")
    ledger = Ledger(redis, ttl_s=3600, worker_name="w-done")
    jobs = {}
    for key in ("done", "settled"):
        job_id = take_one(redis).job_id
        jobs[key] = job_id
        assert ledger.claim(job_id.removeprefix("smsq-")).outcome == "claimed"
    intermediate = "rq:queue:smsq-default:intermediate"
    assert ledger.finish(
        message_id("settled"),
        State.UNKNOWN,
        {},
        reason="reconciler",
        record={"key": "settled", "lane": "default", "job_id": "j"},
    )

    assert ledger.finish(
        message_id("done"),
        State.SENT,
        {},
        reason="100",
        record={"key": "done", "lane": "default", "job_id": jobs["done"]},
        job=(intermediate, jobs["done"]),
    )
    assert not ledger.finish(
        message_id("settled"),
        State.SENT,
        {},
        reason="100",
        record={"key": "settled", "lane": "default", "job_id": "j"},
        job=(intermediate, jobs["settled"]),
    )

    assert redis.lrange(intermediate, 0, -1) == []
    assert not redis.exists(f"rq:job:{jobs['done']}", f"rq:job:{jobs['settled']}")


def test_a_send_given_its_job_drops_it_with_the_outcome_and_says_so(
    producer: Producer, store: MessageStore, redis: Redis
) -> None:
    """Sender.send(job=...) records the outcome and drops the job in that one script
    (``job_done``); without a job (RQ's own path), nothing is dropped and the caller cleans up."""
    enqueue(producer, "with-job", "without-job")
    sent = httpx.MockTransport(
        lambda request: httpx.Response(
            200,
            json={
                "status": 100,
                "statusText": "ok",
                "smsIds": [{"phoneNumber": "33612345678", "smsId": "s-1"}],
            },
        )
    )
    settings = Settings.from_env({"ALLMYSMS_LOGIN": "me", "ALLMYSMS_API_KEY": "key-1"})
    ledger = Ledger(redis, ttl_s=3600, worker_name="w-send")
    sender = Sender(
        ledger=ledger,
        client=AllMySmsClient(
            base_url="http://allmysms.test/http/9.0",
            login="me",
            api_key=Secret("key-1"),
            timeout=httpx.Timeout(5),
            transport=sent,
        ),
        retrying=partial(send_retrying, settings),
        switch=Switch(redis),
    )
    taken = {}
    for _ in range(2):
        job_id = take_one(redis).job_id
        taken[job_id.removeprefix("smsq-")] = job_id
    intermediate = "rq:queue:smsq-default:intermediate"

    with_job = sender.send(
        message_id("with-job"), job=(intermediate, taken[message_id("with-job")])
    )
    without_job = sender.send(message_id("without-job"))

    assert (with_job.state, with_job.job_done) == ("sent", True)
    assert (without_job.state, without_job.job_done) == ("sent", False)
    assert redis.lrange(intermediate, 0, -1) == [taken[message_id("without-job")].encode()]
    assert not redis.exists(f"rq:job:{taken[message_id('with-job')]}")
    assert redis.exists(f"rq:job:{taken[message_id('without-job')]}")
    assert {store.get(k).state for k in ("with-job", "without-job")} == {  # type: ignore[union-attr]
        State.SENT
    }
