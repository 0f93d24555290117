"""The intake list: JSON send requests RPUSHed by any backend with a bare Redis client.

Each worker moves entries to its own processing list, validates them with the producers' own
code, enqueues them, then drops them from that list. Enqueue is idempotent by key, so an entry
taken twice after a crash is harmless; an entry that is not a valid request becomes a dead
letter naming the field and the reason.

No entry can stop the intake for the others:

* any Python error an entry causes while it is read or validated makes it a dead letter (its
  batch-mates are enqueued one by one), and only a Redis outage stops a pass;
* an entry longer than ``SMSQ_INTAKE_MAX_BYTES`` is never read whole (see ``intake_take.lua``);
* an entry held by a worker process that died (a crash Python cannot catch, such as the kernel's
  out-of-memory killer) goes back to the intake once and is then taken alone; if a worker dies
  holding it again, it becomes a dead letter instead of killing the next one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from producers import keys
from producers.contract import SOURCE_INTAKE
from producers.enqueue import Enqueued, Producer, Refused
from producers.errors import InvalidRequestError, RedisUnavailableError, shown
from producers.store import decoded
from worker.send.crashpoints import crash_point
from worker.store import lua
from worker.store.refused import refuse_intake


if TYPE_CHECKING:
    from redis import Redis

log = structlog.get_logger()

INTAKE_BATCH = 500
"""Entries taken per pass: one Lua call and one enqueue round trip."""
OVERSIZE_MARKER = "smsq-oversize:"
"""Start of what stands for an entry too long to read: ``smsq-oversize:<bytes>:<head>``."""
OVERSIZE_HEAD_BYTES = 500
"""Bytes of an oversized entry kept in its dead letter."""
INTAKE_VALUES = {
    "OVERSIZE_MARKER": OVERSIZE_MARKER,
    "OVERSIZE_HEAD_BYTES": str(OVERSIZE_HEAD_BYTES),
}
"""The placeholders ``intake_take.lua`` takes from here."""
STOPS_BEFORE_POISON = 2
"""Worker stops while holding an entry after which it is a dead letter, not retried."""
ATTEMPTS_TTL_S = 24 * 3600
"""How long the record of such stops is kept after its last change."""
INVALID_UNICODE_REASON = "not valid UTF-8 JSON"
POISON_REASON = "a worker process stopped twice while holding this entry; not retried"


@dataclass(frozen=True, slots=True)
class Recovered:
    """What :meth:`Intake.recover` found in the processing lists of stopped workers."""

    returned: int = 0
    """Entries put back at the front of the intake list."""
    poisoned: int = 0
    """Entries that stopped a worker twice, now dead letters."""


class Intake:
    def __init__(
        self,
        connection: Redis,
        producer: Producer,
        *,
        ttl_s: int,
        worker_name: str,
        max_bytes: int,
    ) -> None:
        self._redis = connection
        self._producer = producer
        self._ttl_s = ttl_s
        self._worker_name = worker_name
        self._processing = keys.intake_processing(worker_name)
        self._max_bytes = max_bytes
        self._take = connection.register_script(lua.load("intake_take", **INTAKE_VALUES))
        self._give_back = connection.register_script(lua.load("intake_recover"))

    def recover(self, *, legacy: bool = False) -> Recovered:
        """Give back what stopped workers held: the processing list of every worker without an
        alive key (and, with ``legacy``, the list all workers shared before 0.2).

        An entry goes back to the front of the intake list the first time; one that was already
        held by a stopped worker becomes a dead letter (see the module docstring).
        """
        lists = [keys.INTAKE_PROCESSING] if legacy else []
        prefix = keys.intake_processing("")
        for raw_key in self._redis.scan_iter(match=prefix + "*", count=1000):
            key = decoded(raw_key)
            owner = key.removeprefix(prefix)
            if owner != self._worker_name and not self._redis.exists(keys.alive(owner)):
                lists.append(key)
        returned = poisoned = 0
        for key in lists:
            back, poison = self._give_back(
                keys=[key, keys.INTAKE, keys.INTAKE_ATTEMPTS, keys.INTAKE_POISON],
                args=[STOPS_BEFORE_POISON, ATTEMPTS_TTL_S],
            )
            returned, poisoned = returned + int(back), poisoned + int(poison)
        self._bury_poison()
        return Recovered(returned=returned, poisoned=poisoned)

    def drain(self, limit: int = INTAKE_BATCH) -> int:
        """Turn up to ``limit`` intake entries into messages or dead letters; return how many.

        Raises:
            RedisUnavailableError: Redis could not be reached; the entries taken stay in this
                worker's processing list and are taken again.
        """
        raw_items: list[bytes] = self._take(
            keys=[keys.INTAKE, self._processing, keys.INTAKE_ATTEMPTS],
            args=[limit, self._max_bytes],
        )
        if not raw_items:
            return 0
        crash_point("holding_intake")
        parsed: list[tuple[bytes, Any]] = []
        for raw in raw_items:
            reason = self._unreadable(raw)
            if reason is None:
                try:
                    parsed.append((raw, json.loads(raw)))
                    continue
                except RecursionError:
                    reason = "not valid JSON: nested too deeply"
                except ValueError as error:
                    reason = (
                        INVALID_UNICODE_REASON
                        if isinstance(error, UnicodeDecodeError)
                        else "not valid JSON"
                    )
            self._dead(raw, None, reason)
        for (raw, _), result in zip(parsed, self._enqueue(parsed), strict=True):
            if isinstance(result, Refused):
                self._dead(raw, result.key, str(result.error), result.error)
            elif isinstance(result, Enqueued):
                log.info(
                    "sms.enqueued",
                    key=result.key,
                    state=result.state.value,
                    duplicate=result.duplicate,
                    source=SOURCE_INTAKE,
                )
            else:
                self._dead(raw, None, result)
        pipe = self._redis.pipeline(transaction=False)
        for raw in raw_items:
            pipe.lrem(self._processing, 1, raw)  # type: ignore[arg-type]
        pipe.hdel(keys.INTAKE_ATTEMPTS, *(_digest(raw) for raw in raw_items))
        pipe.execute()
        return len(raw_items)

    def _unreadable(self, raw: bytes) -> str | None:
        """Why an entry is refused before it is parsed, if it is."""
        if raw.startswith(OVERSIZE_MARKER.encode()):
            size = raw[len(OVERSIZE_MARKER) :].split(b":", 1)[0].decode("ascii", "replace")
            return (
                f"entry is {size} bytes; the intake reads at most {self._max_bytes} "
                "(SMSQ_INTAKE_MAX_BYTES)"
            )
        return None

    def _enqueue(self, parsed: list[tuple[bytes, Any]]) -> list[Enqueued | Refused | str]:
        """Enqueue the batch in one call; if something in it breaks that call, enqueue its
        entries one by one, and whichever breaks alone gets the reason as a string."""
        objects = [obj for _, obj in parsed]
        try:
            return list(self._producer.enqueue_many(objects, source=SOURCE_INTAKE))
        except RedisUnavailableError:
            raise
        except Exception as error:  # noqa: BLE001 - one entry must not stop the others
            if len(objects) == 1:
                return [self._failure(error)]
        results: list[Enqueued | Refused | str] = []
        for obj in objects:
            try:
                results.extend(self._producer.enqueue_many([obj], source=SOURCE_INTAKE))
            except RedisUnavailableError:
                raise
            except Exception as error:  # noqa: BLE001 - dead-letter this one, go on
                results.append(self._failure(error))
        return results

    def _failure(self, error: Exception) -> str:
        log.error("sms.intake.entry_failed", error=type(error).__name__)
        return f"could not be enqueued ({type(error).__name__}); kept here for an operator"

    def _bury_poison(self) -> None:
        """Turn the poison list into dead letters (an entry leaves it only once it is one)."""
        poison: list[bytes] = self._redis.lrange(keys.INTAKE_POISON, 0, -1)  # type: ignore[assignment]
        for raw in poison:
            self._dead(raw, None, POISON_REASON)
            self._redis.lrem(keys.INTAKE_POISON, 1, raw)  # type: ignore[arg-type]

    def _dead(
        self, raw: bytes, key: str | None, reason: str, error: InvalidRequestError | None = None
    ) -> None:
        head, size = _oversize(raw)
        refuse_intake(
            self._redis, raw, reason, ttl_s=self._ttl_s, key=key, head=head, size_bytes=size
        )
        log.warning(
            "sms.intake.refused",
            key=shown(key) if key else None,
            field=error.field if error else None,
            reason=error.reason if error else reason,
        )


def _oversize(raw: bytes) -> tuple[bytes | None, int | None]:
    """An oversize marker's first bytes and the whole entry's size; (None, None) otherwise."""
    if not raw.startswith(OVERSIZE_MARKER.encode()):
        return None, None
    size, _, head = raw[len(OVERSIZE_MARKER) :].partition(b":")
    return (head, int(size)) if size.isdigit() else (None, None)


def _digest(raw: bytes) -> str:
    """The digest ``intake_recover.lua`` files an entry under (``redis.sha1hex``)."""
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()
