"""The global rate limit: SMS segments per second for one AllMySMS account, shared in Redis.

Every send slot of every worker on every host asks the same Redis before each POST, so the
limit holds for the account, not per process. The algorithm is GCRA (generic cell rate
algorithm, a token bucket kept as one number): ``smsq:ratelimit:tat`` is the theoretical arrival
time, in Redis ``TIME`` seconds so host clocks never matter. A request costing ``c`` segments at
``r`` segments/s with a burst of ``B`` segments may start once ``tat - now <= (B - min(c, B)) / r``
(at least ``min(c, B)`` tokens in the bucket) and moves ``tat`` by ``c / r``.

* **Reservations, first come first served within a class; urgent ahead of the rest.** One Lua
  script per acquire reads ``TIME``, computes the caller's wait and books its place. Each lane
  is a priority class (:func:`priority_of`: urgent 0, default 1, bulk 2). An urgent send books
  firmly at once (moves ``tat``), sleeps and posts without asking again: it waits only behind
  firm bookings, never behind a default or bulk send that is still waiting. A default or bulk
  send whose turn is now books firmly too; one that has to wait gets a provisional *ticket*
  (``smsq:ratelimit:queue``), its turn computed after every firm booking and every ticket ahead
  of it (higher classes first, then arrival order). It sleeps until that turn and asks once
  more: if no higher class booked meanwhile, it books firmly and posts; if one did, its turn was
  pushed later and it sleeps until the new one. So a slot re-checks only when its turn is due
  (no polling), and never posts earlier than the firm schedule allows: every post is a firm
  booking, and firm bookings alone make the GCRA schedule, so the account-wide rate and burst
  hold exactly whatever the classes. Nothing starves below the full rate: urgent traffic at
  ``u`` segments/s leaves ``rate - u`` to the others; urgent traffic at the full rate takes
  every turn, and waiting bulk sends run out of their budget and go back to their lane (see
  below) until it eases. A ticket whose holder does not come back within
  :data:`TICKET_GRACE_S` of its turn (a dead worker) is dropped, so it delays others no longer.
* **A cost above the burst still goes.** It needs only ``min(c, B)`` tokens, i.e. a full bucket,
  and then carries the rest as debt: ``tat`` moves ``c / r`` ahead and later requests wait it off.
  The long-run rate stays exact; nothing is too big to send.
* **Push-back slows the whole fleet (AIMD).** HTTP 429/503 halves the shared effective rate
  (``smsq:ratelimit:state``), never below 10% of the setting, at most once per second however
  many slots saw it; a ``Retry-After`` also holds every new reservation back that long. A provider
  latency (per-process moving average) above ``SMSQ_RATE_LIMIT_SLOW_LATENCY_S`` (or 3x the usual
  latency) cuts 20%, at most once per 5 s. Successful answers grow the rate back additively, by
  ``rate / SMSQ_RATE_LIMIT_RECOVERY_S`` per second, and the state is deleted once at full speed.
* **Never a drop.** A send waits at most its budget (``SMSQ_SEND_MAX_WAIT_S``); when the queue of
  reservations is longer than that, nothing is booked and :class:`RateLimitBacklogError` tells the
  sender to put the message back in its lane (nothing was sent); a waiting default or bulk send
  pushed past its budget gives its ticket up and its message back at once. :meth:`RateLimiter.stop`
  wakes every waiting slot the same way, for a fast warm shutdown.
* **Off costs nothing.** With ``SMSQ_RATE_LIMIT_SEGMENTS_PER_S=0`` (the default) no method touches
  Redis and no key is created.

Every worker must run with the same rate and burst: the scripts
(``worker/store/lua/ratelimit_*.lua``) take them as arguments. The cost of priority: a default
or bulk send that had to wait makes one more Redis call at its turn, and one more each time a
higher class pushed it while it slept.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis import Redis

from producers import keys
from producers.contract import LANE_ORDER, Lane
from producers.errors import SmsqError
from producers.redis_errors import REDIS_OUTAGE_ERRORS
from worker.allmysms.client import RETRY_AFTER_MAX_S
from worker.settings import Settings
from worker.store import lua


log = structlog.get_logger()

FLOOR_FRACTION = 0.1
"""The effective rate never drops below this fraction of the setting."""
PUSH_BACK_FACTOR = 0.5
"""Multiplicative decrease on HTTP 429/503."""
PUSH_BACK_COOLDOWN_S = 1.0
"""At most one push-back decrease per this many seconds, fleet-wide (a burst of 429s seen by
many slots at once is one signal)."""
SLOW_FACTOR = 0.8
"""Multiplicative decrease when the provider's latency rises."""
SLOW_COOLDOWN_S = 5.0
"""At most one latency decrease per this many seconds, fleet-wide (a moving average lags)."""
SLOW_BASELINE_RATIO = 3.0
"""Without ``SMSQ_RATE_LIMIT_SLOW_LATENCY_S``: slow is this many times the usual latency..."""
SLOW_MIN_S = 0.25
"""...and at least this many seconds."""
LATENCY_ALPHA = 0.2
"""Weight of a new sample in the recent-latency moving average."""
BASELINE_ALPHA = 0.02
"""Weight of a new (not slow) sample in the usual-latency moving average."""
LATENCY_WARMUP = 20
"""Samples before a derived threshold is trusted."""
STATE_TTL_S = 3600
"""A slowdown nobody refreshed for this long is forgotten (full speed again)."""
TICKET_GRACE_S = 2.0
"""A provisional turn whose holder has not come back this long after it is dropped (the
holder's worker died); a holder later still books again, at the end of its class."""


def priority_of(lane: Lane) -> int:
    """The limiter's priority class of a lane: urgent 0 (the highest), default 1, bulk 2."""
    return LANE_ORDER.index(lane)


class RateLimitBacklogError(SmsqError):
    """The limiter could not let this send go within its wait budget, or the worker is stopping.

    Nothing was booked for it and nothing was sent: the message goes back to its lane.
    """

    def __init__(self, cost: int, wait_s: float | None) -> None:
        reason = (
            "the worker is stopping"
            if wait_s is None
            else f"the rate limit's queue is {wait_s:.1f} s long"
        )
        super().__init__(f"{cost} segments not sent: {reason}")
        self.cost = cost
        self.wait_s = wait_s


@dataclass(frozen=True, slots=True)
class Grant:
    """One acquire's answer."""

    booked: bool
    """True: the place is reserved; sleep ``wait_s`` then send. False: nothing was reserved."""
    wait_s: float
    rate: float
    """The shared effective rate (segments/s) at that moment."""
    at: float = 0.0
    """Redis ``TIME`` of the acquire: the send's turn is ``at + wait_s`` on Redis's clock."""
    ticket: str | None = None
    """Set when the turn is provisional (a lower class waiting): a higher class may still push
    it later, so at the turn the holder acquires again with this ticket instead of posting."""


class RateLimiter:
    """Thread-safe and process-safe: all shared state is in Redis, the rest behind a lock."""

    def __init__(
        self,
        redis: Redis | None,
        *,
        segments_per_s: float,
        burst_segments: int = 0,
        slow_latency_s: float = 0.0,
        recovery_s: float = 30.0,
        max_wait_s: float = 60.0,
        sleep: Callable[[float], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = segments_per_s
        self.burst = burst_segments or max(1, math.ceil(segments_per_s))
        self.max_wait_s = max_wait_s
        self._redis = redis if segments_per_s > 0 else None
        self._slow_latency_s = slow_latency_s
        self._recovery_s = recovery_s
        self._clock = clock
        self._stopping = threading.Event()
        self._sleep = sleep or self._interruptible_sleep
        self._lock = threading.Lock()
        self._observed_rate = segments_per_s
        self._recent_s: float | None = None
        self._usual_s: float | None = None
        self._samples = 0
        if self._redis is not None:
            self._acquire = self._redis.register_script(lua.load("ratelimit_acquire"))
            self._slow_down = self._redis.register_script(lua.load("ratelimit_slow_down"))
            self._recover = self._redis.register_script(lua.load("ratelimit_recover"))

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis) -> RateLimiter:
        return cls(
            redis,
            segments_per_s=settings.rate_limit_segments_per_s,
            burst_segments=settings.rate_limit_burst_segments,
            slow_latency_s=settings.rate_limit_slow_latency_s,
            recovery_s=settings.rate_limit_recovery_s,
            max_wait_s=settings.send_max_wait_s,
        )

    @property
    def enabled(self) -> bool:
        return self._redis is not None

    def deadline(self) -> float:
        """The latest (monotonic) time a send starting now may still be waiting for its turn."""
        return self._clock() + self.max_wait_s

    def stop(self) -> None:
        """Wake every waiting slot with :class:`RateLimitBacklogError` (warm shutdown)."""
        self._stopping.set()

    def acquire(
        self, cost: int, *, max_wait_s: float, priority: int = 0, ticket: str | None = None
    ) -> Grant:
        """Reserve ``cost`` segments in class ``priority`` (0, the default, is the highest) if
        the wait is at most ``max_wait_s``; one Redis call. ``ticket``: the provisional turn a
        previous acquire gave, now due (a ticket that was dropped books again).

        Off, it grants at once without touching Redis.
        """
        if self._redis is None:
            return Grant(True, 0.0, 0.0)
        booked, wait_s, rate, at, given = self._acquire(
            keys=[
                keys.RATE_LIMIT_TAT,
                keys.RATE_LIMIT_STATE,
                keys.RATE_LIMIT_QUEUE,
                keys.RATE_LIMIT_DUE,
                keys.RATE_LIMIT_ARRIVALS,
            ],
            args=[
                repr(self.rate),
                self.burst,
                max(1, cost),
                repr(max(0.0, max_wait_s)),
                repr(FLOOR_FRACTION),
                max(0, priority),
                ticket or "",
                repr(TICKET_GRACE_S),
            ],
        )
        grant = Grant(
            bool(int(booked)),
            float(wait_s),
            float(rate),
            float(at),
            (given.decode() if isinstance(given, bytes) else str(given)) or None,
        )
        with self._lock:
            self._observed_rate = grant.rate
        return grant

    def wait(self, cost: int, *, deadline: float | None = None, priority: int = 0) -> float:
        """Wait for this send's turn in class ``priority`` and return how long that took (0.0
        when off). A provisional turn is checked again when due, and slept for again if a
        higher class pushed it.

        Raises:
            RateLimitBacklogError: the turn would come after ``deadline`` (nothing is booked:
                the caller requeues the message), or :meth:`stop` was called.
        """
        if self._redis is None:
            return 0.0
        if self._stopping.is_set():
            raise RateLimitBacklogError(cost, None)
        waited = 0.0
        ticket: str | None = None
        while True:
            remaining = math.inf if deadline is None else deadline - self._clock()
            grant = self.acquire(
                cost, max_wait_s=min(max(remaining, 0.0), 1e9), priority=priority, ticket=ticket
            )
            if not grant.booked:
                # Asked first: the queue ahead of this class only gets shorter as time passes
                # (unless a higher class books), never by more than time itself, so this send
                # cannot get its turn in its budget. Hold the slot for the budget (so a requeued
                # message does not spin through claim/requeue), then give the message back.
                # Pushed past its budget while waiting: give it back now, leaving the slot to
                # the higher-class sends that took the turns.
                if remaining > 0 and ticket is None:
                    self._sleep(remaining)
                log.warning(
                    "sms.ratelimit.backlog",
                    cost=cost,
                    wait_s=round(grant.wait_s, 3),
                    rate=round(grant.rate, 3),
                    pushed=ticket is not None,
                )
                raise RateLimitBacklogError(cost, grant.wait_s)
            if ticket is not None and grant.wait_s > 0:
                log.debug("sms.ratelimit.pushed", cost=cost, wait_s=round(grant.wait_s, 3))
            if grant.wait_s > 0:
                self._sleep(grant.wait_s)
                waited += grant.wait_s
                if self._stopping.is_set():
                    self._cancel(grant.ticket)
                    raise RateLimitBacklogError(cost, None)
            if grant.ticket is None:
                return waited
            ticket = grant.ticket

    def _cancel(self, ticket: str | None) -> None:
        """Give up a provisional turn (its send will not come for it); if Redis is out of
        reach, the ticket is dropped by itself :data:`TICKET_GRACE_S` after its turn."""
        if ticket is None or self._redis is None:
            return
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(keys.RATE_LIMIT_QUEUE, ticket)
                pipe.zrem(keys.RATE_LIMIT_DUE, ticket)
                pipe.execute()
        except REDIS_OUTAGE_ERRORS:
            log.warning("sms.ratelimit.cancel_failed")

    def push_back(self, *, retry_after_s: float | None = None) -> None:
        """AllMySMS answered 429/503: halve the shared rate, hold off for ``Retry-After``."""
        if self._redis is None:
            return
        pause = min(retry_after_s or 0.0, RETRY_AFTER_MAX_S)
        self._decrease(PUSH_BACK_FACTOR, PUSH_BACK_COOLDOWN_S, pause, "push_back")

    def answered(self, latency_s: float, *, success: bool) -> None:
        """Feed one answered request's latency; a success also lets the rate grow back."""
        if self._redis is None:
            return
        if self._is_slow(latency_s):
            self._decrease(SLOW_FACTOR, SLOW_COOLDOWN_S, 0.0, "slow")
            return
        with self._lock:
            slowed = self._observed_rate < self.rate
        if success and slowed:
            rate = float(
                self._recover(
                    keys=[keys.RATE_LIMIT_STATE],
                    args=[repr(self.rate), repr(self._recovery_s), STATE_TTL_S],
                )
            )
            with self._lock:
                self._observed_rate = rate

    def effective_rate(self) -> float:
        """The shared rate as stored (the setting when no slowdown is recorded), 0.0 when off."""
        if self._redis is None:
            return 0.0
        raw = self._redis.hget(keys.RATE_LIMIT_STATE, "rate")
        if raw is None:
            return self.rate
        return max(min(float(raw), self.rate), self.rate * FLOOR_FRACTION)

    def _decrease(self, factor: float, cooldown_s: float, pause_s: float, why: str) -> None:
        cut, rate = self._slow_down(
            keys=[keys.RATE_LIMIT_TAT, keys.RATE_LIMIT_STATE],
            args=[
                repr(self.rate),
                repr(FLOOR_FRACTION),
                repr(factor),
                repr(cooldown_s),
                repr(pause_s),
                self.burst,
                STATE_TTL_S,
            ],
        )
        with self._lock:
            self._observed_rate = float(rate)
        if int(cut):
            log.warning(
                "sms.ratelimit.slowed",
                reason=why,
                rate=round(float(rate), 3),
                retry_after_s=pause_s or None,
            )

    def _is_slow(self, latency_s: float) -> bool:
        with self._lock:
            self._samples += 1
            recent = (
                latency_s
                if self._recent_s is None
                else (self._recent_s + LATENCY_ALPHA * (latency_s - self._recent_s))
            )
            self._recent_s = recent
            if self._slow_latency_s > 0:
                threshold = self._slow_latency_s
            elif self._usual_s is None or self._samples <= LATENCY_WARMUP:
                threshold = math.inf
            else:
                threshold = max(SLOW_BASELINE_RATIO * self._usual_s, SLOW_MIN_S)
            slow = recent > threshold
            if not slow:
                usual = self._usual_s
                self._usual_s = (
                    latency_s if usual is None else (usual + BASELINE_ALPHA * (latency_s - usual))
                )
            return slow

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)
