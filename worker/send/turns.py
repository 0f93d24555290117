"""A task one worker at a time runs once per interval: a per-process timer, then a Redis lock
held for (nearly) the interval, so among every worker only the first to ask gets the turn."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from redis import Redis

LOCK_MARGIN_MS = 50
"""The lock ends this much before the interval, so the next turn is never missed by a hair."""
LOCK_MIN_MS = 100


class Turn:
    def __init__(self, connection: Redis, lock_key: str, *, interval_s: float, by: str) -> None:
        self._redis = connection
        self._lock_key = lock_key
        self._interval_s = interval_s
        self._by = by
        self._next_run = 0.0

    def due(self) -> bool:
        """Whether this worker runs the task now: on (interval above 0), this process's interval
        passed, and no other worker took this interval's turn.

        Raises:
            redis.exceptions.RedisError: Redis could not be asked (the caller's to log).
        """
        if self._interval_s <= 0:
            return False
        now = time.monotonic()
        if now < self._next_run:
            return False
        self._next_run = now + self._interval_s
        lock_ms = max(int(self._interval_s * 1000) - LOCK_MARGIN_MS, LOCK_MIN_MS)
        return bool(self._redis.set(self._lock_key, self._by, nx=True, px=lock_ms))
