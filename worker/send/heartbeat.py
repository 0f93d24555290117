"""A worker process's alive key, refreshed by a daemon thread.

The key disappears ``worker_dead_after_s`` after the process dies (kill -9 included), which is how
other workers learn that its in-flight send and the jobs it held need attention. A thread, not
the work loop, refreshes it: a send may block the loop for as long as the read timeout.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import redis.exceptions
import structlog

from producers import keys
from worker.store.workers import add_beat, mark_stopped


if TYPE_CHECKING:
    from collections.abc import Callable

    from redis import Redis

log = structlog.get_logger()

LAST_BEAT_TTL_S = 24 * 3600
"""How long the time of a worker's last heartbeat is kept after it stops beating."""


class Heartbeat:
    def __init__(
        self,
        connection: Redis,
        worker_name: str,
        *,
        ttl_s: float,
        board: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self._board = board
        """This process's figures for the workers board (busy slots, sends), with every beat."""
        self._name = worker_name
        self._redis = connection
        self._key = keys.alive(worker_name)
        self._last_key = keys.last_beat(worker_name)
        self._ttl_ms = int(ttl_s * 1000)
        self._period_s = ttl_s / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smsq-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._key, "1", px=self._ttl_ms)
        pipe.set(self._last_key, f"{time.time():.3f} {self._ttl_ms / 1000:g}", ex=LAST_BEAT_TTL_S)
        if self._board is not None:
            add_beat(pipe, self._name, self._board())
        pipe.execute()

    def stop(self) -> None:
        """Stop refreshing and delete the key: this worker no longer holds anything."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._period_s + 1)
        try:
            self._redis.delete(self._key, self._last_key)
            if self._board is not None:
                mark_stopped(self._redis, self._name, self._board())
        except redis.exceptions.RedisError:
            log.warning("sms.worker.heartbeat_unavailable")

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.beat()
            except redis.exceptions.RedisError:
                # Redis is down: others cannot judge liveness either; keep trying.
                continue
