"""The global rate limit: GCRA in Redis shared by threads, processes and workers; push-back."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.errors import OutcomeUnknownError, ProviderBusyError
from producers.states import State
from producers.store import MessageStore
from tests.helpers.crashes import terminal
from tests.helpers.processes import Workers, wait_for
from worker.allmysms.client import AllMySmsClient, parse_retry_after
from worker.sandbox import SandboxProvider
from worker.send import ratelimit
from worker.send.ratelimit import Grant, RateLimitBacklogError, RateLimiter
from worker.send.retries import send_retrying
from worker.settings import Secret, Settings


EPS = 1e-4
"""Redis TIME and the stored schedule have microsecond precision."""
SETTINGS = Settings(
    login="acme",
    api_key=Secret("key-123456"),
    send_attempts=4,
    send_max_wait_s=30,
    retry_initial_wait_s=0.5,
    retry_max_wait_s=4,
)
FLUX = {"DATA": {"MESSAGE": "Hi", "SMS": [{"MOBILEPHONE": "33612345678"}]}}


def limiter(redis: Redis, rate: float, burst: int = 0, **kwargs: Any) -> RateLimiter:
    return RateLimiter(redis, segments_per_s=rate, burst_segments=burst, **kwargs)


def turns(grants: list[Grant]) -> list[float]:
    """When each acquisition may send, on Redis's clock, in order."""
    return sorted(g.at + g.wait_s for g in grants)


def assert_conforms(starts: list[float], rate: float, burst: int) -> None:
    """GCRA's guarantee: any k consecutive sends span at least (k - burst) / rate seconds."""
    for i in range(len(starts)):
        for j in range(i + burst, len(starts)):
            assert starts[j] - starts[i] >= (j - i + 1 - burst) / rate - EPS, (i, j)


# --- the limiter alone --------------------------------------------------------------------------


class NoRedis:
    """Fails the test on any use: an off limiter must never touch Redis."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Redis used while the limit is off: {name}")


def test_off_never_touches_redis(redis: Redis) -> None:
    """Rate 0 (the default) grants at once, ignores feedback, and creates no key."""
    off = RateLimiter(NoRedis(), segments_per_s=0)  # type: ignore[arg-type]
    assert not off.enabled
    assert off.wait(10_000, deadline=0.0) == 0.0
    off.push_back(retry_after_s=5)
    off.answered(99.0, success=True)
    assert off.acquire(3, max_wait_s=0).booked
    assert Settings.from_env({}).rate_limit_segments_per_s == 0
    assert not RateLimiter.from_settings(Settings(), redis).enabled
    assert redis.keys("*") == []


def test_burst_then_exactly_the_rate(redis: Redis) -> None:
    """40 segments at 20/s, burst 10: 10 at once, then one every 50 ms; the 40th 1.5 s later."""
    rl = limiter(redis, 20, 10)
    grants = [rl.acquire(1, max_wait_s=60) for _ in range(40)]

    assert all(g.booked for g in grants)
    assert [g.wait_s for g in grants[:10]] == [0.0] * 10
    first = grants[0].at
    for k, grant in enumerate(grants[10:], start=10):
        assert grant.at + grant.wait_s == pytest.approx(first + (k - 9) / 20, abs=EPS)
    assert turns(grants)[-1] - first == pytest.approx(1.5, abs=EPS)


def test_default_burst_is_one_seconds_worth(redis: Redis) -> None:
    assert limiter(redis, 20).burst == 20
    assert limiter(redis, 0.5).burst == 1
    assert limiter(redis, 20, 7).burst == 7


def _child(url: str, count: int, start: Any, out: Any) -> None:
    client = Redis.from_url(url)
    rl = RateLimiter(client, segments_per_s=20, burst_segments=10)
    start.wait()
    grants = [rl.acquire(1, max_wait_s=60) for _ in range(count)]
    out.put([(g.at, g.wait_s) for g in grants])
    client.close()


@pytest.mark.workers
def test_two_threads_and_two_processes_share_one_schedule(redis: Redis) -> None:
    """4 x 10 acquisitions from 2 threads and 2 processes: one exact schedule, ~1.5 s long."""
    url = redis.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    out: Any = context.Queue()
    processes = [context.Process(target=_child, args=(redis_url, 10, start, out)) for _ in range(2)]
    for process in processes:
        process.start()
    gate = threading.Event()
    grants: list[Grant] = []
    lock = threading.Lock()

    def thread_body() -> None:
        client = Redis.from_url(redis_url)
        rl = RateLimiter(client, segments_per_s=20, burst_segments=10)
        gate.wait()
        mine = [rl.acquire(1, max_wait_s=60) for _ in range(10)]
        with lock:
            grants.extend(mine)
        client.close()

    threads = [threading.Thread(target=thread_body) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # let the spawned interpreters reach the start line
    gate.set()
    start.set()
    for thread in threads:
        thread.join(30)
    for _ in processes:
        grants.extend(Grant(True, wait, 20.0, at) for at, wait in out.get(timeout=30))
    for process in processes:
        process.join(30)
        assert process.exitcode == 0

    starts = turns(grants)
    assert len(starts) == 40
    assert_conforms(starts, 20, 10)
    assert starts[-1] - starts[0] >= 1.5 - EPS
    assert starts[-1] - starts[0] < 2.5  # arrivals were within a few ms of each other


def test_a_cost_above_the_burst_goes_and_later_sends_pay_its_debt(redis: Redis) -> None:
    """50 segments with a burst of 5 at 10/s: sent at once, the next one waits 4.6 s."""
    rl = limiter(redis, 10, 5)
    big = rl.acquire(50, max_wait_s=60)
    small = rl.acquire(1, max_wait_s=60)

    assert (big.booked, big.wait_s) == (True, 0.0)
    assert small.at + small.wait_s == pytest.approx(big.at + (50 - 4) / 10, abs=EPS)


def test_a_big_cost_behind_small_ones_is_never_overtaken(redis: Redis) -> None:
    """Reservations are first come first served: a big one books its turn at once."""
    rl = limiter(redis, 10, 5)
    for _ in range(5):
        rl.acquire(1, max_wait_s=60)
    big = rl.acquire(50, max_wait_s=60)
    after = rl.acquire(1, max_wait_s=60)

    assert big.booked
    assert big.wait_s == pytest.approx(0.5, abs=0.05)  # behind the 5 small ones, no longer
    assert after.at + after.wait_s == pytest.approx(big.at + big.wait_s + 4.6, abs=EPS)


def test_wait_sleeps_its_turn(redis: Redis) -> None:
    slept: list[float] = []
    rl = limiter(redis, 10, 1, sleep=slept.append)
    assert rl.wait(1) == 0.0
    waited = rl.wait(1)
    assert 0.09 < waited <= 0.1 + EPS
    assert slept == [waited]


def test_a_backlog_longer_than_the_budget_books_nothing_and_gives_the_message_back(
    redis: Redis,
) -> None:
    """No turn within the deadline: nothing booked (tat unchanged), RateLimitBacklogError."""
    slept: list[float] = []
    rl = limiter(redis, 1, 1, sleep=slept.append)
    rl.acquire(10, max_wait_s=60)
    tat = redis.get(keys.RATE_LIMIT_TAT)

    with pytest.raises(RateLimitBacklogError) as info:
        rl.wait(1, deadline=time.monotonic() + 0.2)

    assert redis.get(keys.RATE_LIMIT_TAT) == tat
    assert info.value.wait_s is not None
    assert info.value.wait_s > 9
    assert len(slept) == 1
    assert 0.1 < slept[0] <= 0.2


def test_stop_wakes_a_waiting_slot(redis: Redis) -> None:
    rl = limiter(redis, 1, 1)
    rl.acquire(5, max_wait_s=60)
    errors: list[BaseException] = []

    def body() -> None:
        try:
            rl.wait(1)
        except RateLimitBacklogError as exc:
            errors.append(exc)

    thread = threading.Thread(target=body)
    started = time.monotonic()
    thread.start()
    time.sleep(0.1)
    rl.stop()
    thread.join(5)
    assert time.monotonic() - started < 2
    assert len(errors) == 1
    assert errors[0].args[0].endswith("the worker is stopping")


def test_push_back_halves_once_per_second_down_to_a_floor(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    rl = limiter(redis, 10, 10)
    rl.push_back()
    rl.push_back()  # the same burst of 429s seen by another slot: no second cut
    assert rl.effective_rate() == pytest.approx(5.0)
    assert rl.acquire(1, max_wait_s=60).rate == pytest.approx(5.0)

    monkeypatch.setattr(ratelimit, "PUSH_BACK_COOLDOWN_S", 0.0)
    for _ in range(6):
        rl.push_back()
    assert rl.effective_rate() == pytest.approx(1.0)  # 10% of 10/s


def test_retry_after_holds_every_new_reservation(redis: Redis) -> None:
    rl = limiter(redis, 10, 10)
    rl.push_back(retry_after_s=2)
    grant = rl.acquire(1, max_wait_s=60)
    assert grant.wait_s == pytest.approx(2.0, abs=0.01)


def test_successes_grow_the_rate_back_additively(redis: Redis) -> None:
    rl = limiter(redis, 10, 10, recovery_s=1.0)
    rl.push_back()
    rl.acquire(1, max_wait_s=60)  # this process learns it is slowed down
    time.sleep(0.25)
    rl.answered(0.01, success=True)
    assert 7.0 < rl.effective_rate() < 9.0  # 5 + 10/s x ~0.25 s
    time.sleep(0.3)
    rl.answered(0.01, success=True)
    assert rl.effective_rate() == 10.0
    assert not redis.exists(keys.RATE_LIMIT_STATE)  # back at full speed: nothing stored


def test_failures_do_not_grow_the_rate(redis: Redis) -> None:
    rl = limiter(redis, 10, 10, recovery_s=0.1)
    rl.push_back()
    rl.acquire(1, max_wait_s=60)
    time.sleep(0.2)
    rl.answered(0.01, success=False)
    assert rl.effective_rate() == pytest.approx(5.0)


def test_latency_over_the_threshold_slows_down(redis: Redis) -> None:
    rl = limiter(redis, 10, 10, slow_latency_s=0.5)
    rl.answered(0.1, success=True)
    assert not redis.exists(keys.RATE_LIMIT_STATE)
    rl.answered(3.0, success=True)  # moving average 0.1 + 0.2 x 2.9 = 0.68 s > 0.5 s
    assert rl.effective_rate() == pytest.approx(8.0)


def test_latency_three_times_the_usual_slows_down(redis: Redis) -> None:
    rl = limiter(redis, 10, 10)
    for _ in range(ratelimit.LATENCY_WARMUP + 5):
        rl.answered(0.05, success=True)
    assert not redis.exists(keys.RATE_LIMIT_STATE)
    for _ in range(3):
        rl.answered(1.0, success=True)
    assert rl.effective_rate() == pytest.approx(8.0)


# --- HTTP 429/503 from AllMySMS ----------------------------------------------------------------


def client_answering(*responses: httpx.Response) -> tuple[AllMySmsClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return AllMySmsClient.from_settings(SETTINGS, transport=httpx.MockTransport(handler)), seen


@pytest.mark.parametrize(
    ("status", "headers", "retry_after_s"),
    [
        (429, {}, None),
        (429, {"Retry-After": "2"}, 2.0),
        (503, {"Retry-After": "0"}, 0.0),
        (503, {"Retry-After": "1"}, 1.0),
    ],
)
def test_429_and_503_with_retry_after_are_provably_not_sent(
    status: int, headers: dict[str, str], retry_after_s: float | None
) -> None:
    client, _ = client_answering(httpx.Response(status, text="busy", headers=headers))
    with pytest.raises(ProviderBusyError) as info:
        client.send(FLUX)
    assert (info.value.http_status, info.value.retry_after_s) == (status, retry_after_s)


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (500, {}),
        (502, {}),
        (504, {}),
        (503, {}),
        (503, {"Retry-After": "soon"}),
    ],
)
def test_other_5xx_and_a_bare_503_stay_unknown(status: int, headers: dict[str, str]) -> None:
    """A bare 503 may come from a proxy whose upstream broke after the request went through."""
    client, _ = client_answering(httpx.Response(status, text="oops", headers=headers))
    with pytest.raises(OutcomeUnknownError) as info:
        client.send(FLUX)
    error: Exception = info.value
    assert not isinstance(error, ProviderBusyError)
    assert info.value.http_status == status


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        (" 0.5 ", 0.5),
        ("-3", 0.0),
        ("7200", 60.0),
        ("soon", None),
        ("", None),
        ("Thu, 01 Jan 1970 00:00:10 GMT", 10.0),
        ("nan", None),
    ],
)
def test_retry_after_is_read_and_capped(header: str, seconds: float | None) -> None:
    assert parse_retry_after(header, now=0.0) == seconds


def test_503_with_retry_after_is_retried_after_that_long() -> None:
    """tenacity waits the Retry-After (longer than its back-off), then the POST goes through."""
    client, seen = client_answering(
        httpx.Response(503, headers={"Retry-After": "3"}),
        httpx.Response(200, json={"status": 100, "statusText": "ok"}),
    )
    slept: list[float] = []

    reply = send_retrying(SETTINGS, sleep=slept.append)(client.send, FLUX)

    assert reply.status == 100
    assert len(seen) == 2
    assert slept == [3.0]


# --- end to end: real workers, the sandbox over sockets -----------------------------------------


def sandbox_times(sandbox: SandboxProvider) -> list[float]:
    return [datetime.fromisoformat(r["at"]).timestamp() for r in sandbox.requests()]


def test_429_then_success_sends_once_and_slows_the_fleet(
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    redis: Redis,
) -> None:
    sandbox.add_fault({"action": "busy", "http_status": 429})
    producer.enqueue({"key": "busy-1", "text": "Hi", "to": ["0612345678"]})

    run = workers.run_burst(SMSQ_RATE_LIMIT_SEGMENTS_PER_S="5")

    assert run.returncode == 0, run.log
    requests = sandbox.requests()
    assert [(r["fault"], r["status"]) for r in requests] == [("busy", None), (None, 100)]
    record = store.get("busy-1")
    assert record is not None
    assert (record.state, record.attempts) == (State.SENT, 2)
    rate = float(redis.hget(keys.RATE_LIMIT_STATE, "rate") or 0)
    assert 2.5 <= rate < 3.0  # halved, a success's worth of recovery since
    assert any(e.get("event") == "sms.ratelimit.slowed" for e in run.events())


def test_503_with_retry_after_is_honoured_without_the_limit(
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    redis: Redis,
) -> None:
    """The limit off: still retried (after Retry-After), never dropped, and no limiter key."""
    sandbox.add_fault({"action": "busy", "http_status": 503, "retry_after": 1})
    producer.enqueue({"key": "busy-2", "text": "Hi", "to": ["0612345678"]})

    workers.run_burst()

    first, second = sandbox_times(sandbox)
    assert second - first >= 0.99
    record = store.get("busy-2")
    assert record is not None
    assert record.state is State.SENT
    assert redis.keys("smsq:ratelimit*") == []


def test_bare_503_is_unknown_never_resent_but_slows_the_fleet(
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    redis: Redis,
) -> None:
    sandbox.add_fault({"action": "busy", "http_status": 503})
    producer.enqueue({"key": "busy-4", "text": "Hi", "to": ["0612345678"]})

    workers.run_burst(SMSQ_RATE_LIMIT_SEGMENTS_PER_S="5")

    assert [r["fault"] for r in sandbox.requests()] == ["busy"]
    record = store.get("busy-4")
    assert record is not None
    assert record.state is State.UNKNOWN
    assert float(redis.hget(keys.RATE_LIMIT_STATE, "rate") or 0) == pytest.approx(2.5)


def test_busy_past_every_attempt_goes_back_to_the_lane_not_to_failed(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    sandbox.add_fault({"action": "busy", "http_status": 429, "times": 2})
    producer.enqueue({"key": "busy-3", "text": "Hi", "to": ["0612345678"]})

    workers.run_burst(SMSQ_SEND_ATTEMPTS="2")

    assert [r["fault"] for r in sandbox.requests()] == ["busy", "busy", None]
    record = store.get("busy-3")
    assert record is not None
    assert record.state is State.SENT
    assert [h["state"] for h in record.history] == [
        "queued",
        "sending",
        "queued",
        "sending",
        "sent",
    ]


def test_fifteen_messages_at_five_per_second_take_two_seconds(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Burst 5 then 5/s: the 15th request reaches the provider >= 2 s after the first."""
    for n in range(15):
        producer.enqueue({"key": f"rl-{n}", "text": "Hi", "to": ["0612345678"]})

    run = workers.run_burst(SMSQ_RATE_LIMIT_SEGMENTS_PER_S="5", SMSQ_RATE_LIMIT_BURST_SEGMENTS="5")

    assert run.returncode == 0, run.log
    times = sorted(sandbox_times(sandbox))
    assert len(times) == 15
    assert times[-1] - times[0] >= 1.95
    assert times[-1] - times[0] < 6
    assert_conforms(times, 5, 5 + 1)  # +1: millisecond log stamps and network jitter
    assert all(store.get(f"rl-{n}").state is State.SENT for n in range(15))  # type: ignore[union-attr]


def test_the_limit_counts_segments_not_recipients(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Two 2-segment messages (200 GSM-7 characters) at 2 segments/s, burst 2: the second
    waits about a second (it left at once when the worker counted 1 per recipient)."""
    for n in range(2):
        producer.enqueue({"key": f"long-{n}", "text": "x" * 200, "to": ["0612345678"]})

    run = workers.run_burst(SMSQ_RATE_LIMIT_SEGMENTS_PER_S="2", SMSQ_RATE_LIMIT_BURST_SEGMENTS="2")

    assert run.returncode == 0, run.log
    first, second = sorted(sandbox_times(sandbox))
    assert 0.9 <= second - first < 3
    assert {store.get(f"long-{n}").state for n in range(2)} == {State.SENT}  # type: ignore[union-attr]


def test_a_code_never_leaves_after_its_validity(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Four codes valid 1.5 s at 1 segment/s, enqueued to a running worker: the first two
    leave (0 s, 1 s), the other two would leave at 2 s and 3 s, past their validity: they end
    expired, nothing posted (all four were sent before)."""
    workers.start(
        SMSQ_RATE_LIMIT_SEGMENTS_PER_S="1", SMSQ_RATE_LIMIT_BURST_SEGMENTS="1", SMSQ_SEND_SLOTS="4"
    )
    log = workers.log_dir / "worker-0.log"
    wait_for(lambda: "Listening on" in log.read_text(), what="the worker")
    for n in range(4):
        producer.enqueue(
            {"key": f"otp-{n}", "text": "Code 1234", "to": ["0612345678"], "valid_for_s": 1.5}
        )
    wait_for(lambda: terminal(store, *(f"otp-{n}" for n in range(4))), what="four outcomes")

    records = {n: store.get(f"otp-{n}") for n in range(4)}
    assert sorted(r.state.value for r in records.values() if r) == [
        "expired",
        "expired",
        "sent",
        "sent",
    ]
    assert len(sandbox.requests()) == 2
    expired = [r for r in records.values() if r and r.state is State.EXPIRED]
    assert {r.error for r in expired} == {
        "valid_for_s ran out while it waited for a rate-limit turn; nothing was sent"
    }
