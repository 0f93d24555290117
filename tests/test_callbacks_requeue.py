"""``smsq callbacks --requeue``: dead callbacks sent again, once, with the same webhook-id, a
fresh attempt budget, the destination policy checked again; dry run, filters, unknown ids,
concurrent requeues and purges, and the audit entry. Real redis-server, real receiver, the CLI
and ``smsq callbacks --burst`` as real processes."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.store import decoded
from tests.helpers.callbacks import (
    CALLBACK_SECRET,
    Receiver,
    deliver_all,
    finish_sent,
    make_dead,
    metric,
    run_callbacks,
    settings,
)
from worker.callbacks.dispatcher import Dispatcher
from worker.callbacks.outbox import dead_callbacks
from worker.callbacks.requeue import NOT_DEAD, CallbackRequeue, DeadQuery
from worker.dev.redis_server import RedisServer
from worker.store.audit import AuditLog
from worker.store.purge import Purger


AUDIT_TTL_S = 3600


def audit(redis: Redis) -> list[dict[str, Any]]:
    return [e.as_dict() for e in AuditLog(redis, ttl_s=AUDIT_TTL_S).entries()]


def callback_state(redis: Redis) -> dict[str, Any]:
    """Everything the outbox and the dead callbacks hold."""
    raw_ids: list[bytes] = redis.zrange(keys.CALLBACK_DEAD, 0, -1)  # type: ignore[assignment]
    dead_ids = [i.decode() for i in raw_ids]
    return {
        "due": redis.zrange(keys.CALLBACK_DUE, 0, -1, withscores=True),
        "events": redis.hgetall(keys.CALLBACK_EVENTS),
        "attempts": redis.hgetall(keys.CALLBACK_ATTEMPTS),
        "dead": redis.zrange(keys.CALLBACK_DEAD, 0, -1, withscores=True),
        "dead_events": {i: redis.hgetall(keys.dead_callback(i)) for i in dead_ids},
        "metrics": redis.hgetall(keys.METRICS),
    }


def redis_now(redis: Redis) -> float:
    seconds, micros = redis.time()
    return float(seconds) + micros / 1_000_000


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def test_a_dead_callback_requeued_is_delivered_once_with_the_same_webhook_id(
    redis: Redis, redis_server: RedisServer, producer: Producer, receiver: Receiver
) -> None:
    receiver.statuses = [410]
    url = receiver.start()
    finish_sent(redis, producer, "rq-one", callback_url=url)
    assert deliver_all(Dispatcher(settings(), redis)) == ["dead"]
    [dead] = dead_callbacks(redis)

    done = run_callbacks(
        redis_server.url, "--requeue", dead.event_id, "--by", "ops", "--why", "T-1"
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"{dead.event_id}: requeued - message.final rq-one to 127.0.0.1 "
        "(was: HTTP 410: refused by the receiver)\n"
    )
    assert dead_callbacks(redis) == []
    assert redis.exists(keys.dead_callback(dead.event_id)) == 0
    assert metric(redis, "callbacks_requeued") == 1

    burst = run_callbacks(redis_server.url, "--burst", "--threads", "2")
    assert burst.returncode == 0, burst.stderr
    assert len(receiver.received) == 2
    first, again = receiver.received
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == dead.event_id
    assert again.body == first.body
    assert again.verified(CALLBACK_SECRET) == first.event
    assert metric(redis, "callbacks_delivered") == 1
    assert redis.zcard(keys.CALLBACK_DUE) == 0
    assert redis.hlen(keys.CALLBACK_EVENTS) == 0
    assert dead_callbacks(redis) == []

    # Nothing more to send: a second burst posts nothing.
    assert run_callbacks(redis_server.url, "--burst").returncode == 0
    assert len(receiver.received) == 2

    [entry] = audit(redis)
    assert {k: v for k, v in entry.items() if k not in ("id", "at")} == {
        "action": "callbacks.requeue",
        "actor": "ops",
        "why": "T-1",
        "count": 1,
        "targets": [dead.event_id],
        "counts": {},
        "erasure_id": "",
    }
    assert "0612345678" not in json.dumps(entry)
    assert "33612345678" not in json.dumps(entry)


def test_a_requeued_event_gets_a_fresh_attempt_budget(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """Dead after its last allowed attempt, it is taken again as attempt 1, its age from the
    requeue, so one more failure is retried, not dead at once."""
    receiver.statuses = [500, 500, 503]
    url = receiver.start()
    finish_sent(redis, producer, "rq-budget", callback_url=url)
    dispatcher = Dispatcher(settings(callback_max_attempts=2, callback_initial_wait_s=0.01), redis)
    outcomes: list[str] = []
    while len(outcomes) < 2:
        pending = dispatcher.outbox.take()
        if pending is None:
            time.sleep(0.02)
            continue
        outcomes.append(dispatcher.deliver(pending))
    assert outcomes == ["retry", "dead"]
    [dead] = dead_callbacks(redis)
    assert dead.attempts == 2
    before = redis_now(redis)
    [done] = CallbackRequeue(redis, audit_ttl_s=AUDIT_TTL_S).requeue(
        [dead.event_id], DeadQuery(), actor="ops"
    )
    assert done.action == "requeued"
    pending = dispatcher.outbox.take()
    assert pending is not None
    assert (pending.event_id, pending.attempt) == (dead.event_id, 1)
    assert pending.created >= before
    assert pending.event == dead.event
    assert dispatcher.deliver(pending) == "retry"  # 503 on attempt 1 of 2: retried
    time.sleep(0.05)
    assert deliver_all(dispatcher) == ["delivered"]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_the_destination_policy_is_checked_again_at_delivery(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    receiver.statuses = [404]
    finish_sent(redis, producer, "rq-policy", callback_url=receiver.start())
    deliver_all(Dispatcher(settings(), redis))
    [dead] = dead_callbacks(redis)
    CallbackRequeue(redis, audit_ttl_s=AUDIT_TTL_S).requeue(
        [dead.event_id], DeadQuery(), actor="ops"
    )
    # Loopback is no longer allowed: nothing is sent, the event is dead again.
    assert deliver_all(Dispatcher(settings(callback_allowed_networks=()), redis)) == ["dead"]
    assert len(receiver.received) == 1
    [again] = dead_callbacks(redis)
    assert again.event_id == dead.event_id
    assert again.attempts == 1
    assert "127.0.0.1" in again.reason
    assert again.http_status is None


def test_dry_run_changes_nothing_and_lists_exactly_what_would_go(
    redis: Redis, redis_server: RedisServer, producer: Producer, receiver: Receiver
) -> None:
    url = receiver.start()
    finish_sent(redis, producer, "rq-a", callback_url=url)
    finish_sent(redis, producer, "rq-b", callback_url=url)
    gone = make_dead(redis, reason="HTTP 410: refused by the receiver", status=410)
    finish_sent(redis, producer, "rq-c", callback_url=url)
    kept = make_dead(redis, reason="HTTP 500 after 3 attempts", status=500, attempts=3)
    before = callback_state(redis)

    done = run_callbacks(redis_server.url, "--requeue", "--reason", "410", "--dry-run", "--json")
    assert (done.returncode, done.stderr) == (0, "")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    keys_of = {e.event_id: e.event["key"] for e in dead_callbacks(redis)}
    assert sorted(keys_of[r["event_id"]] for r in rows) == ["rq-a", "rq-b"]
    assert {r["event_id"] for r in rows} == set(gone)
    for row in rows:
        assert row == {
            "event_id": row["event_id"],
            "action": "requeued",
            "detail": f"message.final {keys_of[row['event_id']]} to 127.0.0.1 "
            "(was: HTTP 410: refused by the receiver)",
            "dry_run": True,
        }
    text = run_callbacks(redis_server.url, "--requeue", kept[0], "--dry-run")
    assert (text.returncode, text.stdout) == (
        0,
        f"{kept[0]}: requeued (dry run) - message.final rq-c to 127.0.0.1 (was: HTTP 500 after 3 "
        "attempts)\n",
    )
    assert callback_state(redis) == before
    assert audit(redis) == []
    assert receiver.received == []


def test_filters_select_exactly(
    redis: Redis, redis_server: RedisServer, producer: Producer, receiver: Receiver
) -> None:
    url = receiver.start()
    port = url.split(":")[2].split("/")[0]
    finish_sent(redis, producer, "f-old", callback_url=url)
    [old] = make_dead(redis, reason="HTTP 410: refused by the receiver", status=410)
    time.sleep(0.05)
    boundary = redis_now(redis)
    time.sleep(0.05)
    finish_sent(redis, producer, "f-shop", callback_url=url, producer_login="shop")
    [shop] = make_dead(redis, reason="HTTP 404: refused by the receiver", status=404)
    finish_sent(redis, producer, "f-host", callback_url=f"http://LocalHost:{port}/hook")
    [host] = make_dead(redis, reason="ConnectError after 200 attempts")

    def selected(*filters: str) -> set[str]:
        done = run_callbacks(redis_server.url, "--requeue", *filters, "--dry-run", "--json")
        assert done.returncode == 0, done.stderr
        return {json.loads(line)["event_id"] for line in done.stdout.splitlines()}

    assert selected("--reason", "REFUSED") == {old, shop}
    assert selected("--reason", "connecterror") == {host}
    assert selected("--since", iso(boundary)) == {shop, host}
    assert selected("--until", iso(boundary)) == {old}
    assert selected("--producer", "shop") == {shop}
    assert selected("--host", "localhost") == {host}
    assert selected("--host", "127.0.0.1", "--reason", "404") == {shop}
    assert selected("--host", "127.0.0.1", "--since", iso(boundary), "--producer", "shop") == {shop}
    none = run_callbacks(redis_server.url, "--requeue", "--producer", "nobody")
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "nothing matches\n")
    assert audit(redis) == []

    done = run_callbacks(redis_server.url, "--requeue", "--host", "localhost", "--json")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["event_id"] for line in done.stdout.splitlines()] == [host]
    assert {d.event_id for d in dead_callbacks(redis)} == {old, shop}
    assert redis.zrange(keys.CALLBACK_DUE, 0, -1) == [host.encode()]
    [entry] = audit(redis)
    assert (entry["action"], entry["count"], entry["targets"]) == ("callbacks.requeue", 1, [host])


def test_requeue_of_an_unknown_id_says_so(
    redis: Redis, redis_server: RedisServer, producer: Producer, receiver: Receiver
) -> None:
    finish_sent(redis, producer, "u-1", callback_url=receiver.start())
    [known] = make_dead(redis, reason="HTTP 410: refused by the receiver", status=410)

    alone = run_callbacks(redis_server.url, "--requeue", "no-such-event")
    assert (alone.returncode, alone.stdout, alone.stderr) == (
        1,
        f"no-such-event: refused - {NOT_DEAD}\n",
        "",
    )
    assert audit(redis) == []

    both = run_callbacks(redis_server.url, "--requeue", "no-such-event", known, "--json")
    assert both.returncode == 1
    assert [json.loads(line) for line in both.stdout.splitlines()] == [
        {"event_id": "no-such-event", "action": "refused", "detail": NOT_DEAD, "dry_run": False},
        {
            "event_id": known,
            "action": "requeued",
            "detail": "message.final u-1 to 127.0.0.1 (was: HTTP 410: refused by the receiver)",
            "dry_run": False,
        },
    ]
    # Requeued already: not dead any more.
    again = run_callbacks(redis_server.url, "--requeue", known)
    assert (again.returncode, again.stdout) == (1, f"{known}: refused - {NOT_DEAD}\n")
    [entry] = audit(redis)
    assert (entry["count"], entry["targets"]) == (1, [known])


def test_bad_usage_is_refused_with_the_option_named(redis_server: RedisServer) -> None:
    nothing = run_callbacks(redis_server.url, "--requeue")
    assert (nothing.returncode, nothing.stdout) == (2, "")
    assert nothing.stderr == (
        "smsq: configuration error: --requeue: name dead callbacks' event ids, or give filters "
        "(--reason, --since...)\n"
    )
    stray = run_callbacks(redis_server.url, "--reason", "410")
    assert (stray.returncode, stray.stderr) == (
        2,
        "smsq: configuration error: --reason: only goes with --requeue\n",
    )
    stray_id = run_callbacks(redis_server.url, "--dead", "some-id")
    assert (stray_id.returncode, stray_id.stderr) == (
        2,
        "smsq: configuration error: EVENT_ID: only goes with --requeue\n",
    )
    naive = run_callbacks(redis_server.url, "--requeue", "--since", "2026-11-25T10:00:00")
    assert naive.returncode == 2
    assert naive.stderr.splitlines()[-1] == (
        "smsq callbacks: error: argument --since: needs a UTC offset, e.g. "
        "2026-11-25T10:00:00+01:00"
    )
    both = run_callbacks(redis_server.url, "--requeue", "--dead", "x")
    assert both.returncode == 2
    assert both.stderr.splitlines()[-1] == (
        "smsq callbacks: error: argument --dead: not allowed with argument --requeue"
    )


def test_concurrent_requeues_of_the_same_events_move_each_once(
    redis: Redis, redis_server: RedisServer, producer: Producer, receiver: Receiver
) -> None:
    url = receiver.start()
    for n in range(30):
        finish_sent(redis, producer, f"race-{n}", callback_url=url)
    ids = make_dead(redis, reason="HTTP 410: refused by the receiver", status=410)
    assert len(ids) == 30
    barrier = threading.Barrier(2)
    results: list[list[str]] = [[], []]

    def requeue(slot: int) -> None:
        client = Redis.from_url(redis_server.url)
        desk = CallbackRequeue(client, audit_ttl_s=AUDIT_TTL_S)
        for event_id in ids:
            barrier.wait(10)
            [done] = desk.requeue([event_id], DeadQuery(), actor=f"ops-{slot}")
            results[slot].append(done.action)
        client.close()

    threads = [threading.Thread(target=requeue, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for n in range(30):
        assert sorted((results[0][n], results[1][n])) == ["refused", "requeued"]
    assert metric(redis, "callbacks_requeued") == 30
    assert redis.zcard(keys.CALLBACK_DUE) == 30
    assert deliver_all(Dispatcher(settings(), redis)) == ["delivered"] * 30
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sorted(ids)
    entries = audit(redis)
    assert sum(e["count"] for e in entries) == 30
    assert sorted(t for e in entries for t in e["targets"]) == sorted(ids)


def test_two_requeue_processes_at_once_deliver_the_event_once(
    redis: Redis, redis_server: RedisServer, producer: Producer, receiver: Receiver
) -> None:
    import subprocess
    import sys

    from tests.helpers.callbacks import callbacks_env
    from tests.helpers.processes import ROOT

    receiver.statuses = [410]
    finish_sent(redis, producer, "race-cli", callback_url=receiver.start())
    deliver_all(Dispatcher(settings(), redis))
    [dead] = dead_callbacks(redis)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "worker", "callbacks", "--requeue", dead.event_id],
            env=callbacks_env(redis_server.url),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    codes = sorted(p.wait(60) for p in procs)
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert codes == [0, 1]
    assert run_callbacks(redis_server.url, "--burst").returncode == 0
    assert [r.headers["webhook-id"] for r in receiver.received] == [dead.event_id] * 2
    assert metric(redis, "callbacks_delivered") == 1
    [entry] = audit(redis)
    assert (entry["count"], entry["targets"]) == (1, [dead.event_id])


def test_an_erased_dead_callback_is_not_brought_back(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """smsq purge redacts a dead final event for the first person and erases it with the
    second: a requeue afterwards finds nothing to send (the move is one script, so a purge and a
    requeue at once end in one or the other, never both)."""
    receiver.statuses = [410, 410]
    url = receiver.start()
    finish_sent(redis, producer, "erase-me", callback_url=url)
    deliver_all(Dispatcher(settings(), redis))
    [dead] = dead_callbacks(redis)
    requeue = CallbackRequeue(redis, audit_ttl_s=AUDIT_TTL_S)
    Purger(redis, default_region="FR", audit_ttl_s=AUDIT_TTL_S).purge(
        "0612345678", actor="dpo", why="GDPR-1"
    )
    [redacted] = dead_callbacks(redis)
    assert redacted.event_id == dead.event_id
    assert "33612345678" not in redacted.event["sms_ids"]
    Purger(redis, default_region="FR", audit_ttl_s=AUDIT_TTL_S).purge(
        "0698765432", actor="dpo", why="GDPR-2"
    )
    assert dead_callbacks(redis) == []
    [done] = requeue.requeue([dead.event_id], DeadQuery(), actor="ops")
    assert (done.action, done.detail) == ("refused", NOT_DEAD)
    assert redis.zcard(keys.CALLBACK_DUE) == 0
    assert redis.hlen(keys.CALLBACK_EVENTS) == 0
    assert deliver_all(Dispatcher(settings(), redis)) == []
    assert len(receiver.received) == 1
    assert [e["action"] for e in audit(redis)] == ["erasure", "erasure"]


def test_a_dead_callback_of_an_earlier_version_is_requeued_too(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """Before dead callbacks had a hash of their own, the envelope stayed in the events hash
    and the reason in the reasons hash (its attempts too): requeued the same way."""
    finish_sent(redis, producer, "legacy", callback_url=receiver.start())
    [event_id] = [decoded(i) for i in redis.hkeys(keys.CALLBACK_EVENTS)]
    redis.zrem(keys.CALLBACK_DUE, event_id)
    redis.hset(keys.CALLBACK_ATTEMPTS, event_id, 7)
    redis.hset(
        keys.CALLBACK_DEAD_REASONS,
        event_id,
        json.dumps({"reason": "HTTP 410: refused by the receiver", "attempts": 7, "at": 1.0}),
    )
    redis.zadd(keys.CALLBACK_DEAD, {event_id: redis_now(redis)})
    [listed] = dead_callbacks(redis)
    assert (listed.event_id, listed.attempts) == (event_id, 7)

    [done] = CallbackRequeue(redis, audit_ttl_s=AUDIT_TTL_S).requeue(
        [event_id], DeadQuery(), actor="ops"
    )
    assert done.action == "requeued"
    assert dead_callbacks(redis) == []
    assert redis.hexists(keys.CALLBACK_DEAD_REASONS, event_id) == 0
    pending = Dispatcher(settings(), redis).outbox.take()
    assert pending is not None
    assert (pending.event_id, pending.attempt) == (event_id, 1)
    assert (pending.event["key"], pending.event["event_id"]) == ("legacy", event_id)
    assert redis.hlen(keys.CALLBACK_EVENTS) == 1


def test_a_purge_meeting_a_requeue_still_erases_the_requeued_event(
    redis: Redis,
    redis_server: RedisServer,
    producer: Producer,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dead callback requeued after the purge read the waiting events, before it read the
    dead ones, is erased among the waiting events all the same: nothing is sent with the
    number."""
    receiver.statuses = [410]
    finish_sent(redis, producer, "race-purge", callback_url=receiver.start())
    deliver_all(Dispatcher(settings(), redis))
    [dead] = dead_callbacks(redis)
    other = Redis.from_url(redis_server.url)
    real_scan_iter = redis.scan_iter

    def scan_iter(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("match") == keys.dead_callback("*"):
            [done] = CallbackRequeue(other, audit_ttl_s=AUDIT_TTL_S).requeue(
                [dead.event_id], DeadQuery(), actor="ops"
            )
            assert done.action == "requeued"
        return real_scan_iter(*args, **kwargs)

    monkeypatch.setattr(redis, "scan_iter", scan_iter)
    report = Purger(redis, default_region="FR", audit_ttl_s=AUDIT_TTL_S).purge(
        "0612345678", actor="dpo"
    )
    monkeypatch.undo()
    other.close()
    assert (report.redacted_callback_events, report.redacted_dead_callbacks) == (1, 0)
    assert dead_callbacks(redis) == []
    assert deliver_all(Dispatcher(settings(), redis)) == ["delivered"]
    [_, sent] = receiver.received
    assert sent.headers["webhook-id"] == dead.event_id
    assert sent.verified(CALLBACK_SECRET)["sms_ids"] == {"33698765432": "race-purge-b"}
    assert b"33612345678" not in sent.body
