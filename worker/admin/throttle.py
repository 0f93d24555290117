"""Failed-login throttles.

- Per client (:class:`LoginThrottle`): five failures from one address (or one recognised
  browser) within a minute lock it out for the rest of that minute. In memory, per process.
  The address is the TCP peer's, or the one a trusted proxy forwards (``SMSQ_TRUSTED_PROXIES``).
- For the whole site (:class:`FailureBudget`): at most :data:`SITE_MAX_FAILURES` failures per
  :data:`SITE_WINDOW_S`, counted in Redis, whatever the addresses: 40 addresses x 5 guesses no
  longer make 200 guesses a minute. Once it is spent, only browsers that logged in successfully
  before (a signed device cookie, :mod:`worker.admin.devices`) may still try, each under its own
  per-client limit; everyone else waits for the window to end. So an attacker can bound but not
  end the operators' access: an operator who has logged in from that browser before still gets
  in during an attack; a first login from a new browser waits until the attack stops (at most a
  minute after the last failure).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from producers import keys


if TYPE_CHECKING:
    from redis import Redis


MAX_FAILURES = 5
WINDOW_S = 60.0
MAX_CLIENTS = 10_000
"""Clients tracked at once; past it the stalest are forgotten, so a flood cannot exhaust memory."""
SITE_MAX_FAILURES = 20
"""Failed logins the whole site accepts per window (one account: typos of a few operators fit)."""
SITE_WINDOW_S = 60
FAILURES_KEY = keys.ADMIN_LOGIN_FAILURES


class LoginThrottle:
    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        # Handlers run on the event loop and in the thread pool; the lock covers both.
        self._lock = threading.Lock()

    def retry_after_s(self, client: str) -> int:
        """Seconds until ``client`` may try again; 0 when it may try now."""
        with self._lock:
            failures = self._recent(client)
            if len(failures) < self._max:
                return 0
            # Blocked until the oldest failure that counts leaves the window.
            wait = failures[-self._max] + self._window_s - self._clock()
            return max(1, int(wait + 0.999))

    def fail(self, client: str) -> None:
        with self._lock:
            self._recent(client)
            self._failures.setdefault(client, deque(maxlen=self._max)).append(self._clock())
            if len(self._failures) > MAX_CLIENTS:
                stalest = min(self._failures, key=lambda c: self._failures[c][-1])
                del self._failures[stalest]

    def succeed(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        """The client's failures still inside the window; forgets the client when none are."""
        failures = self._failures.get(client)
        if failures is None:
            return deque()
        horizon = self._clock() - self._window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[client]
        return failures


class FailureBudget:
    """Failed logins of the whole site per fixed window, shared in Redis by every admin process."""

    def __init__(
        self,
        connection: Redis,
        *,
        max_failures: int = SITE_MAX_FAILURES,
        window_s: int = SITE_WINDOW_S,
    ) -> None:
        self._redis = connection
        self._max = max_failures
        self._window_s = window_s

    def retry_after_s(self) -> int:
        """Seconds until the window ends when its budget is spent; 0 while failures remain."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(FAILURES_KEY)
            pipe.ttl(FAILURES_KEY)
            count, ttl = pipe.execute()
        if count is None or int(count) < self._max:
            return 0
        return max(1, int(ttl))

    def fail(self) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            # The first failure of a window starts it: the counter expires with the window.
            pipe.set(FAILURES_KEY, 0, ex=self._window_s, nx=True)
            pipe.incr(FAILURES_KEY)
            pipe.execute()
