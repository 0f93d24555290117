"""The intake list: JSON send requests RPUSHed by any backend with a bare Redis client.

Workers move entries to a processing list, validate them with the producers' own code, enqueue
them, then drop them from the processing list. Enqueue is idempotent by key, so an entry taken
twice after a crash is harmless; an entry that is not a valid request becomes a dead letter.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import structlog

from producers import keys
from producers.enqueue import Producer, Refused
from producers.errors import InvalidRequestError
from worker.store import lua
from worker.store.refused import refuse_intake


if TYPE_CHECKING:
    from redis import Redis

log = structlog.get_logger()

INTAKE_BATCH = 500
"""Entries taken per pass: one Lua call and one enqueue round trip."""


class Intake:
    def __init__(self, connection: Redis, producer: Producer, *, ttl_s: int) -> None:
        self._redis = connection
        self._producer = producer
        self._ttl_s = ttl_s
        self._take = connection.register_script(lua.load("intake_take"))

    def recover(self) -> int:
        """Put entries a crashed worker left in the processing list back on the intake list."""
        moved = 0
        while self._redis.lmove(keys.INTAKE_PROCESSING, keys.INTAKE, "RIGHT", "LEFT"):
            moved += 1
        return moved

    def drain(self, limit: int = INTAKE_BATCH) -> int:
        """Turn up to ``limit`` intake entries into messages or dead letters; return how many."""
        raw_items: list[bytes] = self._take(
            keys=[keys.INTAKE, keys.INTAKE_PROCESSING], args=[limit]
        )
        if not raw_items:
            return 0
        parsed: list[tuple[bytes, Any]] = []
        for raw in raw_items:
            try:
                parsed.append((raw, json.loads(raw)))
            except ValueError:
                self._dead(raw, None, "not valid JSON")
        results = self._producer.enqueue_many([obj for _, obj in parsed], source="intake")
        for (raw, _), result in zip(parsed, results, strict=True):
            if isinstance(result, Refused):
                self._dead(raw, result.key, str(result.error), result.error)
            else:
                log.info(
                    "sms.enqueued",
                    key=result.key,
                    state=result.state.value,
                    duplicate=result.duplicate,
                    source="intake",
                )
        pipe = self._redis.pipeline(transaction=False)
        for raw in raw_items:
            pipe.lrem(keys.INTAKE_PROCESSING, 1, raw)  # type: ignore[arg-type]
        pipe.execute()
        return len(raw_items)

    def _dead(
        self, raw: bytes, key: str | None, reason: str, error: InvalidRequestError | None = None
    ) -> None:
        refuse_intake(self._redis, raw, reason, ttl_s=self._ttl_s, key=key)
        log.warning(
            "sms.intake.refused",
            key=key,
            field=error.field if error else None,
            reason=error.reason if error else reason,
        )
