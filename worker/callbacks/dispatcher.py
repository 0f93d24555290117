"""``smsq callbacks``: delivers callback events to producers, at least once, off the send path.

Each event is POSTed as compact JSON signed the Standard Webhooks way
(:mod:`producers.callbacks`): ``webhook-id`` (the event id, the same on every attempt),
``webhook-timestamp`` (this attempt's Unix seconds) and ``webhook-signature: v1,<base64
HMAC-SHA256 of "<id>.<timestamp>.<body>">`` with the producer account's ``callback_secret``,
else ``SMSQ_CALLBACK_SECRET``. Outcomes:

* 2xx: delivered, the event is deleted;
* connection errors, timeouts, 408, 429 and 5xx: tried again after an exponential back-off with
  jitter (``Retry-After`` honoured up to the longest wait), scheduled in Redis, not slept in
  process; until ``SMSQ_CALLBACK_MAX_ATTEMPTS`` or ``SMSQ_CALLBACK_MAX_AGE_S``;
* any other answer (3xx, 4xx such as 400, 401, 404, 410): the receiver refused it and asking
  again will not change that: dead at once;
* no secret to sign with: dead at once (never sent unsigned);
* a destination the outbound policy refuses (a host outside ``SMSQ_CALLBACK_ALLOWED_HOSTS``, or
  one resolving to a non-public address outside ``SMSQ_CALLBACK_ALLOWED_NETWORKS``, checked at
  connect time by :mod:`worker.callbacks.policy`): dead at once, nothing is sent.

Dead callbacks stay readable (``smsq callbacks --dead``, counter ``callbacks_dead``) for the
outcome TTL. A dispatcher killed mid-delivery loses nothing: the event's lease runs out and any
dispatcher delivers it again.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import redis.exceptions
import structlog

from producers.callbacks import signed_headers
from producers.errors import CallbackRefusedError
from worker.callbacks.outbox import Outbox, Pending, event_body
from worker.callbacks.policy import CallbackPolicy, callback_client
from worker.send.retries import backoff_s, jittered_s
from worker.settings import callback_secret_for


if TYPE_CHECKING:
    from redis import Redis

    from worker.settings import Settings

log = structlog.get_logger()

LEASE_MARGIN_S = 2.0
"""Added to the longest a POST can take (connect + read timeouts) to lease an event."""
REDIS_ERROR_PAUSE_S = 1.0
"""How long a dispatcher thread waits after a Redis error before trying again."""
RETRYABLE_STATUSES = frozenset({408, 429})
"""4xx answers worth another attempt: timeout and rate limit (plus every 5xx)."""
USER_AGENT = "smsq-callbacks/1"


class Dispatcher:
    """Takes due events from the outbox and POSTs them; safe to run in several processes."""

    def __init__(
        self, settings: Settings, connection: Redis, *, client: httpx.Client | None = None
    ) -> None:
        self._settings = settings
        timeout = settings.callback_timeout_s
        self._outbox = Outbox(
            connection,
            lease_s=2 * timeout + LEASE_MARGIN_S,
            keep_dead_s=settings.producer.outcome_ttl_s,
        )
        self._client = client or callback_client(
            CallbackPolicy.from_settings(settings),
            timeout_s=timeout,
            headers={"User-Agent": USER_AGENT},
        )

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def close(self) -> None:
        self._client.close()

    def run(self, stop: threading.Event, *, burst: bool = False) -> None:
        """Deliver until ``stop`` is set (the delivery in progress finishes first); with
        ``burst``, return as soon as nothing is due."""
        while not stop.is_set():
            pending = None
            try:
                pending = self._outbox.take()
                if pending is None:
                    if burst:
                        return
                    self._outbox.wait_for_work(self._settings.idle_wait_s)
                    continue
                self.deliver(pending)
            except redis.exceptions.RedisError as exc:
                log.warning("sms.callback.redis_unavailable", error=type(exc).__name__)
                stop.wait(REDIS_ERROR_PAUSE_S)
            except Exception as exc:  # one bad event must not end the thread
                log.exception("sms.callback.unexpected_error", error=type(exc).__name__)
                if pending is not None:
                    # A bug, not the receiver: visible in `smsq callbacks --dead`, not retried
                    # forever. (If Redis fails here too, the lease runs out and it comes back.)
                    try:
                        self._dead(
                            pending,
                            f"unexpected error in smsq: {type(exc).__name__}",
                            None,
                            {"event_id": pending.event_id},
                        )
                    except redis.exceptions.RedisError:
                        stop.wait(REDIS_ERROR_PAUSE_S)

    def deliver(self, pending: Pending) -> str:
        """POST one event and record the outcome: ``delivered``, ``retry`` or ``dead``."""
        fields = {
            "event_id": pending.event_id,
            "kind": pending.event.get("event"),
            "attempt": pending.attempt,
            "host": urlsplit(pending.url).hostname,
        }
        secret = callback_secret_for(self._settings, pending.producer)
        if secret is None:
            reason = (
                f"no callback_secret for producer {pending.producer!r}"
                if pending.producer
                else "SMSQ_CALLBACK_SECRET is not set"
            )
            return self._dead(pending, reason, None, fields)
        body = event_body(pending.event)
        headers = {
            "Content-Type": "application/json",
            **signed_headers(secret.reveal(), pending.event_id, body, timestamp=int(time.time())),
        }
        try:
            response = self._client.post(pending.url, content=body, headers=headers)
        except CallbackRefusedError as exc:
            return self._dead(pending, str(exc), None, fields)
        except httpx.InvalidURL:
            return self._dead(pending, "callback_url is not a URL httpx can send to", None, fields)
        except httpx.TransportError as exc:
            return self._retry(pending, type(exc).__name__, None, None, fields)
        status = response.status_code
        if 200 <= status < 300:
            self._outbox.delivered(pending.event_id)
            log.info("sms.callback.delivered", http_status=status, **fields)
            return "delivered"
        if status >= 500 or status in RETRYABLE_STATUSES:
            return self._retry(
                pending,
                f"HTTP {status}",
                status,
                _retry_after(response.headers.get("Retry-After")),
                fields,
            )
        return self._dead(pending, f"HTTP {status}: refused by the receiver", status, fields)

    def _retry(
        self,
        pending: Pending,
        reason: str,
        status: int | None,
        retry_after_s: float | None,
        fields: dict[str, object],
    ) -> str:
        settings = self._settings
        wait = jittered_s(
            backoff_s(
                pending.attempt,
                initial_s=settings.callback_initial_wait_s,
                max_s=settings.callback_max_wait_s,
            )
        )
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, settings.callback_max_wait_s))
        age_s = pending.now - pending.created
        if pending.attempt >= settings.callback_max_attempts:
            return self._dead(pending, f"{reason} after {pending.attempt} attempts", status, fields)
        if age_s + wait > settings.callback_max_age_s:
            return self._dead(
                pending, f"{reason}; older than {settings.callback_max_age_s:g} s", status, fields
            )
        self._outbox.retry(pending.event_id, wait)
        log.warning(
            "sms.callback.retry_scheduled",
            reason=reason,
            http_status=status,
            wait_s=round(wait, 3),
            **fields,
        )
        return "retry"

    def _dead(
        self, pending: Pending, reason: str, status: int | None, fields: dict[str, object]
    ) -> str:
        self._outbox.dead(
            pending.event_id, reason=reason, attempts=pending.attempt, http_status=status
        )
        log.error("sms.callback.dead", reason=reason, http_status=status, **fields)
        return "dead"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After: <seconds>`` header (the date form is ignored)."""
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def run_dispatchers(
    settings: Settings,
    connection: Redis,
    stop: threading.Event,
    *,
    threads: int,
    burst: bool = False,
) -> None:
    """Run ``threads`` delivery loops sharing one HTTP client until ``stop`` (or, with
    ``burst``, until nothing is due)."""
    dispatcher = Dispatcher(settings, connection)
    workers = [
        threading.Thread(
            target=dispatcher.run,
            args=(stop,),
            kwargs={"burst": burst},
            name=f"callbacks-{n}",
            daemon=True,
        )
        for n in range(threads)
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            while worker.is_alive():
                worker.join(0.2)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        dispatcher.close()
