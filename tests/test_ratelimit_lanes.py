"""The global rate limit's priority classes: urgent turns go ahead of default and bulk ones that
are already waiting, the account-wide rate still holds, and nothing else starves."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis import Redis

from producers import keys
from producers.contract import Lane
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.crashes import terminal
from tests.helpers.processes import Workers, wait_for
from worker.dev.redis_server import RedisServer
from worker.sandbox import SandboxProvider
from worker.send import ratelimit
from worker.send.ratelimit import Grant, RateLimitBacklogError, RateLimiter, priority_of


EPS = 1e-4
"""Redis TIME and the stored schedule have microsecond precision."""
URGENT, DEFAULT, BULK = (priority_of(lane) for lane in (Lane.URGENT, Lane.DEFAULT, Lane.BULK))


def limiter(redis: Redis, rate: float, burst: int) -> RateLimiter:
    return RateLimiter(redis, segments_per_s=rate, burst_segments=burst)


def assert_within_limit(starts: list[float], rate: float, burst: int, slack_s: float) -> None:
    """Over any window, at most rate x window + burst sends: any k consecutive sends (k >
    burst) span at least (k - burst) / rate seconds, less ``slack_s`` of measuring jitter."""
    starts = sorted(starts)
    for i in range(len(starts)):
        for j in range(i + burst, len(starts)):
            assert starts[j] - starts[i] >= (j - i + 1 - burst) / rate - slack_s, (i, j)


class Recorder:
    """Wraps a limiter's acquire to keep every firm booking's turn (Redis clock): the turns
    the limiter actually let sends go at."""

    def __init__(self, rl: RateLimiter) -> None:
        self.turns: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        inner: Callable[..., Grant] = rl.acquire

        def acquire(cost: int, **kwargs: Any) -> Grant:
            grant = inner(cost, **kwargs)
            if grant.booked and grant.ticket is None:
                with self._lock:
                    self.turns.append((kwargs.get("priority", 0), grant.at + grant.wait_s))
            return grant

        rl.acquire = acquire  # type: ignore[method-assign]

    def of(self, priority: int) -> list[float]:
        with self._lock:
            return sorted(t for p, t in self.turns if p == priority)

    def all(self) -> list[float]:
        with self._lock:
            return sorted(t for _, t in self.turns)


# --- the schedule, without sleeping ----------------------------------------------------------


def test_priority_of_follows_the_lane_order() -> None:
    assert (URGENT, DEFAULT, BULK) == (0, 1, 2)


def test_urgent_books_ahead_of_every_waiting_bulk_turn_and_pushes_them_one_turn(
    redis: Redis,
) -> None:
    """10/s, burst 1: ten bulk sends, the first goes, nine wait (0.1 ... 0.9 s) with tickets.
    An urgent send gets the turn right after the one already booked firmly (0.1 s), not the
    11th; each waiting bulk turn, checked again, comes one turn later than it was told."""
    rl = limiter(redis, 10, 1)
    bulk = [rl.acquire(1, max_wait_s=60, priority=BULK) for _ in range(10)]
    assert bulk[0].ticket is None
    assert bulk[0].wait_s == 0.0
    assert all(g.ticket is not None for g in bulk[1:])
    start = bulk[0].at
    for k, grant in enumerate(bulk[1:], start=1):
        assert grant.at + grant.wait_s == pytest.approx(start + k / 10, abs=EPS)

    urgent = rl.acquire(1, max_wait_s=60, priority=URGENT)

    assert (urgent.booked, urgent.ticket) == (True, None)
    assert urgent.at + urgent.wait_s == pytest.approx(start + 0.1, abs=EPS)
    for k, grant in enumerate(bulk[1:], start=1):
        again = rl.acquire(1, max_wait_s=60, priority=BULK, ticket=grant.ticket)
        assert again.ticket == grant.ticket  # still waiting, same place in its class
        assert again.at + again.wait_s == pytest.approx(start + (k + 1) / 10, abs=EPS)


def test_default_waits_behind_urgent_and_ahead_of_bulk(redis: Redis) -> None:
    """Classes in lane order: a default send books after firm (urgent) turns and before the
    bulk tickets already waiting; a later bulk send comes after every earlier ticket."""
    rl = limiter(redis, 10, 1)
    first = rl.acquire(1, max_wait_s=60, priority=BULK)
    bulk = [rl.acquire(1, max_wait_s=60, priority=BULK) for _ in range(3)]
    urgent = rl.acquire(1, max_wait_s=60, priority=URGENT)
    default = rl.acquire(1, max_wait_s=60, priority=DEFAULT)
    late_bulk = rl.acquire(1, max_wait_s=60, priority=BULK)

    start = first.at
    assert urgent.at + urgent.wait_s == pytest.approx(start + 0.1, abs=EPS)
    assert default.ticket is not None
    assert default.at + default.wait_s == pytest.approx(start + 0.2, abs=EPS)
    assert late_bulk.at + late_bulk.wait_s == pytest.approx(start + 0.6, abs=EPS)
    assert [b.at + b.wait_s for b in bulk] == pytest.approx(
        [start + 0.1, start + 0.2, start + 0.3], abs=EPS
    )  # as told before urgent and default came; they learn their new turns when they ask


SENDS = st.lists(
    st.tuples(st.sampled_from([URGENT, DEFAULT, BULK]), st.integers(min_value=1, max_value=3)),
    min_size=1,
    max_size=30,
)


@given(SENDS)
def test_any_mix_of_classes_keeps_the_rate_and_puts_higher_classes_first(
    redis_server: RedisServer, sends: list[tuple[int, int]]
) -> None:
    """Any sequence of (class, cost) bookings at 10/s, burst 3, then every waiting one asked
    again: the turns told (firm ones and the provisional ones as they stand now) never exceed
    10 x window + 3 segments over any window; every urgent turn comes before every waiting
    turn; waiting turns are in class order, then arrival order."""
    client = Redis.from_url(redis_server.url)
    client.flushdb()
    rl = limiter(client, 10, 3)
    booked = [(p, c, rl.acquire(c, max_wait_s=1e9, priority=p)) for p, c in sends]
    turns: list[tuple[float, int]] = []
    urgent: list[float] = []
    waiting: list[tuple[int, int, float]] = []
    for arrival, (p, c, grant) in enumerate(booked):
        if grant.ticket is not None:
            grant = rl.acquire(c, max_wait_s=1e9, priority=p, ticket=grant.ticket)
            waiting.append((p, arrival, grant.at + grant.wait_s))
        assert grant.booked
        turns.append((grant.at + grant.wait_s, c))
        if p == URGENT:
            urgent.append(grant.at + grant.wait_s)
    client.close()

    turns.sort()
    for i in range(len(turns)):
        for j in range(i, len(turns)):
            window = turns[j][0] - turns[i][0]
            assert sum(c for _, c in turns[i : j + 1]) <= 10 * (window + EPS) + 3, (i, j)
    if urgent and waiting:
        assert max(urgent) <= min(t for _, _, t in waiting) + EPS
    told = [t for _, _, t in sorted(waiting)]
    assert all(b >= a - EPS for a, b in itertools.pairwise(told))


def test_a_waiting_turn_pushed_past_its_budget_gives_the_message_back_and_its_ticket_up(
    redis: Redis,
) -> None:
    """Urgent at the full rate takes every turn: a bulk send told 0.5 s finds, when it asks
    again, a 2 s wait against 1 s of budget left; RateLimitBacklogError at once (the slot is
    not held for the rest of the budget), nothing booked, no ticket left behind."""
    rl = limiter(redis, 10, 1)
    rl.acquire(5, max_wait_s=60, priority=URGENT)
    errors: list[RateLimitBacklogError] = []
    gave_up: list[float] = []
    started = time.monotonic()

    def bulk() -> None:
        try:
            rl.wait(1, deadline=started + 1.5, priority=BULK)
        except RateLimitBacklogError as exc:
            errors.append(exc)
            gave_up.append(time.monotonic() - started)

    thread = threading.Thread(target=bulk)
    thread.start()
    wait_for(lambda: redis.zcard(keys.RATE_LIMIT_QUEUE) == 1, what="the bulk ticket")
    for _ in range(20):
        rl.acquire(1, max_wait_s=60, priority=URGENT)
    tat = redis.get(keys.RATE_LIMIT_TAT)
    thread.join(5)

    assert len(errors) == 1
    assert errors[0].wait_s is not None
    assert errors[0].wait_s > 1.5
    assert 0.49 < gave_up[0] < 1.0
    assert redis.get(keys.RATE_LIMIT_TAT) == tat
    assert redis.zcard(keys.RATE_LIMIT_QUEUE) == 0
    assert redis.zcard(keys.RATE_LIMIT_DUE) == 0


def test_a_ticket_whose_holder_never_comes_back_stops_delaying_the_others(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed while its bulk send waited: its ticket is dropped TICKET_GRACE_S after
    its turn, and the next send goes at once instead of behind it; the holder, should it come
    back after all, books again at the end of its class."""
    monkeypatch.setattr(ratelimit, "TICKET_GRACE_S", 0.2)
    rl = limiter(redis, 10, 1)
    rl.acquire(1, max_wait_s=60, priority=BULK)
    lost = rl.acquire(1, max_wait_s=60, priority=BULK)
    assert lost.ticket is not None
    time.sleep(0.1 + 0.2 + 0.05)

    after = rl.acquire(1, max_wait_s=60, priority=BULK)
    back = rl.acquire(1, max_wait_s=60, priority=BULK, ticket=lost.ticket)

    assert (after.wait_s, after.ticket) == (0.0, None)
    assert back.ticket is not None
    assert back.ticket != lost.ticket
    assert back.wait_s == pytest.approx(0.1, abs=0.01)
    assert redis.zrange(keys.RATE_LIMIT_QUEUE, 0, -1) == [back.ticket.encode()]


def test_stop_gives_up_a_waiting_ticket(redis: Redis) -> None:
    rl = limiter(redis, 1, 1)
    rl.acquire(1, max_wait_s=60, priority=BULK)
    errors: list[RateLimitBacklogError] = []

    def body() -> None:
        try:
            rl.wait(1, priority=BULK)
        except RateLimitBacklogError as exc:
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    wait_for(lambda: redis.zcard(keys.RATE_LIMIT_QUEUE) == 1, what="the bulk ticket")
    rl.stop()
    thread.join(5)

    assert [str(e) for e in errors] == ["1 segments not sent: the worker is stopping"]
    assert redis.zcard(keys.RATE_LIMIT_QUEUE) == 0
    assert redis.zcard(keys.RATE_LIMIT_DUE) == 0


def test_off_costs_nothing_in_any_class(redis: Redis) -> None:
    off = RateLimiter(None, segments_per_s=0)
    assert [off.wait(10_000, deadline=0.0, priority=p) for p in (URGENT, DEFAULT, BULK)] == [
        0.0
    ] * 3
    assert off.acquire(3, max_wait_s=0, priority=BULK, ticket="1:3") == Grant(True, 0.0, 0.0)
    assert redis.keys("*") == []


# --- sleeping threads: the real waits ---------------------------------------------------------


def run_threads(bodies: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=body) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()


def test_urgent_goes_within_one_turn_of_twenty_waiting_bulk_sends_and_the_rate_holds(
    redis: Redis,
) -> None:
    """10/s, burst 2: twenty bulk sends wait (2 s of turns). An urgent send arriving 0.3 s in
    goes within one turn (0.1 s), not after the bulk ones (~1.7 s); every bulk send still goes;
    the firm turns of both classes together never exceed 10/s + 2 over any window."""
    rl = limiter(redis, 10, 2)
    recorder = Recorder(rl)
    done: list[tuple[str, float]] = []
    lock = threading.Lock()

    def redis_now() -> float:
        with lock:  # one client shared by the threads
            seconds, micros = redis.time()
        return float(seconds + micros / 1_000_000)

    def bulk() -> None:
        rl.wait(1, priority=BULK)
        done.append(("bulk", redis_now()))

    urgent_asked: list[float] = []

    def urgent() -> None:
        time.sleep(0.3)
        urgent_asked.append(redis_now())
        rl.wait(1, priority=URGENT)
        done.append(("urgent", redis_now()))

    run_threads([bulk] * 20 + [urgent])

    assert sorted(lane for lane, _ in done) == ["bulk"] * 20 + ["urgent"]
    # When each thread came back from its wait (where it would post): never early. Half a turn
    # of slack for wake-up jitter on a loaded machine (a late wake-up bunches with the next);
    # a slot that did not check its turn again would post a whole turn (0.1 s) early.
    assert_within_limit([at for _, at in done], 10, 2, 0.05)
    (urgent_turn,) = recorder.of(URGENT)
    assert urgent_turn - urgent_asked[0] <= 0.1 + EPS
    bulk_turns = recorder.of(BULK)
    assert len(bulk_turns) == 20
    assert sum(t > urgent_turn for t in bulk_turns) >= 15  # it went ahead of the waiting ones
    assert_within_limit(recorder.all(), 10, 2, EPS)
    assert redis.zcard(keys.RATE_LIMIT_QUEUE) == 0


def test_bulk_progresses_while_urgent_traffic_runs_below_the_full_rate(redis: Redis) -> None:
    """10/s, burst 1: urgent sends one every 0.2 s (under half the rate) for 4 s; ten bulk
    sends waiting from the start all go meanwhile (about 2 s), and the rate holds."""
    rl = limiter(redis, 10, 1)
    recorder = Recorder(rl)
    urgent_until = time.monotonic() + 4.0
    bulk_done: list[float] = []

    def urgent() -> None:
        while time.monotonic() < urgent_until:
            rl.wait(1, priority=URGENT)
            time.sleep(0.2)

    def bulk() -> None:
        rl.wait(1, priority=BULK)
        bulk_done.append(time.monotonic())

    run_threads([urgent] + [bulk] * 10)

    assert len(bulk_done) == 10
    assert max(bulk_done) < urgent_until  # all ten went while urgent traffic never stopped
    assert len(recorder.of(URGENT)) >= 15
    assert_within_limit(recorder.all(), 10, 1, EPS)


# --- end to end: real workers, the sandbox over sockets ---------------------------------------


def test_an_urgent_message_posts_within_one_turn_of_a_saturated_bulk_lane(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Two workers, 2 segments/s, burst 2: twenty bulk messages are booked (about 10 s of
    turns). An urgent message enqueued meanwhile reaches AllMySMS within one turn (0.5 s, plus
    the take), not after every bulk one (~9 s before this fix); all twenty bulk messages are
    sent, and the combined posting times keep to 2/s + 2 over any window."""
    env = {
        "SMSQ_RATE_LIMIT_SEGMENTS_PER_S": "2",
        "SMSQ_RATE_LIMIT_BURST_SEGMENTS": "2",
        "SMSQ_SEND_SLOTS": "12",
        "SMSQ_SEND_MAX_WAIT_S": "20",
    }
    for n in range(2):
        workers.start(**env)
        log = workers.log_dir / f"worker-{n}.log"
        wait_for(lambda log=log: "Listening on" in log.read_text(), what=f"worker {n}")  # type: ignore[misc]
    bulk = [f"bulk-{n}" for n in range(20)]
    producer.enqueue_many(
        [{"key": key, "text": "Promo", "to": ["0612345678"], "lane": "bulk"} for key in bulk]
    )
    wait_for(lambda: len(sandbox.requests()) >= 3, what="the bulk lane under way")

    enqueued = time.time()
    producer.enqueue({"key": "code", "text": "Code 1234", "to": ["0687654321"], "lane": "urgent"})
    wait_for(lambda: terminal(store, "code", *bulk), timeout_s=40, what="21 outcomes")

    requests = sandbox.requests()
    assert len(requests) == 21
    phones = [r["data"]["SMS"][0]["MOBILEPHONE"] for r in requests]
    (urgent,) = [r for r, phone in zip(requests, phones, strict=True) if phone == "33687654321"]
    latency_s = urgent["received_at"] - enqueued
    assert latency_s < 0.5 + 0.5, latency_s
    bulk_after = [
        r for r in requests if r is not urgent and r["received_at"] > urgent["received_at"]
    ]
    assert len(bulk_after) >= 14
    assert_within_limit([r["received_at"] for r in requests], 2, 2, 0.1)
    assert {store.get(key).state for key in ["code", *bulk]} == {State.SENT}  # type: ignore[union-attr]
