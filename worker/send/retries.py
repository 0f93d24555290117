"""The retry doctrine, in one place.

Only :class:`NotSentError` is retried: the request provably never reached AllMySMS. Anything
that may have reached it (a read timeout, a dropped connection, an HTTP error, a garbled answer)
is never resent automatically, and business statuses 102-118 are final answers. Attempts are
bounded by count and by total time, with exponential back-off and jitter.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
import tenacity

from producers.errors import NotSentError, ProviderBusyError
from worker.settings import Settings


log = structlog.get_logger()


def send_retrying(settings: Settings, *, sleep: Callable[[float], None] = time.sleep
                  ) -> tenacity.Retrying:
    """A ``Retrying`` for one send; ``sleep`` is injected by tests."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(NotSentError),
        stop=(tenacity.stop_after_attempt(settings.send_attempts)
              | tenacity.stop_before_delay(settings.send_max_wait_s)),
        wait=RetryAfterWait(tenacity.wait_exponential_jitter(
            multiplier=settings.retry_initial_wait_s,
            max=settings.retry_max_wait_s,
            jitter=settings.retry_initial_wait_s,
        )),
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
