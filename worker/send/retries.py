"""The retry doctrine and every back-off smsq waits with, in one place.

Only :class:`NotSentError` is retried: the request provably never reached AllMySMS. Anything
that may have reached it (a read timeout, a dropped connection, an HTTP error, a garbled answer)
is never resent automatically, and business statuses 102-118 are final answers. Attempts are
bounded by count and by total time, with exponential back-off and jitter.

One back-off, :func:`backoff_s` (doubling from a first wait up to a cap), serves every wait:
send retries (:func:`send_retrying`, plus up to one first wait of additive jitter), the worker
loop while Redis is down, the outcome write while Redis is down (:class:`Backoff`, no jitter)
and callback retries (:func:`jittered_s`, a random 50-100 % of it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
import tenacity

from producers.errors import NotSentError, ProviderBusyError
from worker.settings import Settings


log = structlog.get_logger()

_MAX_DOUBLINGS = 64
"""Beyond this many doublings every cap is reached: keeps ``2 ** n`` a small float."""


def backoff_s(attempt: int, *, initial_s: float, max_s: float) -> float:
    """The wait after failed attempt ``attempt`` (1 for the first): ``initial_s`` doubled per
    attempt, capped at ``max_s``."""
    doublings = min(max(0, attempt - 1), _MAX_DOUBLINGS)
    return float(min(max_s, initial_s * 2.0**doublings))


def jittered_s(wait_s: float) -> float:
    """A random 50-100 % of ``wait_s``, so the retries of many callers do not arrive together."""
    return float(wait_s * random.uniform(0.5, 1.0))  # jitter, not cryptography


class Backoff(tenacity.wait.wait_base):
    """:func:`backoff_s` as a tenacity wait, plus a random ``0..jitter_s`` before the cap."""

    def __init__(self, *, initial_s: float, max_s: float, jitter_s: float = 0.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter_s = jitter_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait_s = backoff_s(retry_state.attempt_number, initial_s=self.initial_s, max_s=self.max_s)
        if self.jitter_s:
            wait_s = min(self.max_s, wait_s + random.uniform(0, self.jitter_s))
        return wait_s


@dataclass(frozen=True, slots=True)
class LaterRetry:
    """Later retry rounds of a message whose attempts provably never reached AllMySMS: each
    round is a full send again (claim, attempts), after :func:`backoff_s` from ``first_wait_s``
    up to ``max_wait_s``, for ``for_s`` in total since the first round was parked (0: off)."""

    for_s: float = 0.0
    first_wait_s: float = 60.0
    max_wait_s: float = 1800.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LaterRetry:
        return cls(
            for_s=settings.later_retry_for_s,
            first_wait_s=settings.later_retry_first_wait_s,
            max_wait_s=settings.later_retry_max_wait_s,
        )

    def due(self, *, rounds: int, since: float | None, now: float) -> float | None:
        """When round ``rounds + 1`` is due (epoch seconds), or None when the window is spent
        (or rounds are off): the message is failed then."""
        if self.for_s <= 0:
            return None
        wait_s = backoff_s(rounds + 1, initial_s=self.first_wait_s, max_s=self.max_wait_s)
        due = now + wait_s
        if due - (since if since is not None else now) > self.for_s:
            return None
        return due


def send_retrying(
    settings: Settings, *, sleep: Callable[[float], None] = time.sleep
) -> tenacity.Retrying:
    """A ``Retrying`` for one send; ``sleep`` is injected by tests."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(NotSentError),
        stop=(
            tenacity.stop_after_attempt(settings.send_attempts)
            | tenacity.stop_before_delay(settings.send_max_wait_s)
        ),
        wait=RetryAfterWait(
            Backoff(
                initial_s=settings.retry_initial_wait_s,
                max_s=settings.retry_max_wait_s,
                jitter_s=settings.retry_initial_wait_s,
            )
        ),
        sleep=sleep,
        reraise=True,
        before_sleep=_log_retry,
    )


class RetryAfterWait(tenacity.wait.wait_base):
    """The back-off, or AllMySMS's ``Retry-After`` (HTTP 429/503) when that is longer."""

    def __init__(self, backoff: tenacity.wait.wait_base) -> None:
        self._backoff = backoff

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait_s = self._backoff(retry_state)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, ProviderBusyError) and error.retry_after_s is not None:
            return max(wait_s, error.retry_after_s)
        return wait_s


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "sms.send.retry_scheduled",
        attempt=state.attempt_number,
        wait_s=round(state.next_action.sleep, 3) if state.next_action else None,
        error=type(error).__name__ if error else None,
    )
