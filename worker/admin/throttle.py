"""Failed-login throttle: five failures from one client within a minute lock it out for the rest
of that minute. In memory, per process: enough for one admin process on a private network."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


MAX_FAILURES = 5
WINDOW_S = 60.0
MAX_CLIENTS = 10_000
"""Clients tracked at once; past it the stalest are forgotten, so a flood cannot exhaust memory."""


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
