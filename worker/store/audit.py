"""The audit stream: one Redis stream of operator actions, who did what, when, why, to how many.

Written by the dead-letter desk (requeue, resolve, purge: the CLI and the admin page share it),
``smsq cancel`` (action ``cancel``), the kill switch (pause and resume, by operators and by
workers themselves: actor ``worker <name>``), ``smsq purge --phone`` (the erasure record) and
``smsq callbacks --requeue`` (dead callbacks sent again: their event ids) and ``smsq optout
add|remove`` (a count, never the numbers). Read by ``smsq
audit`` and the admin page ``/audit``.

An entry holds no phone number and no message text: ``targets`` are message keys (the
producers' own ids) or lanes, and an erasure record holds only counts and a random
``erasure_id`` (nothing derived from the number, so it cannot be reversed by trying numbers).
Each append drops the entries older than ``SMSQ_AUDIT_TTL_S`` (``XADD … MINID``) and sets the
stream to expire that long after its last entry, so nothing outlives the retention even when no
one writes any more. An action that changed nothing (a dry run, everything refused) is not
recorded.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.store import decoded, decoded_hash
from worker.store import lua


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from redis import Redis

REQUEUE = "dlq.requeue"
RESOLVE = "dlq.resolve"
PURGE_DEAD_LETTERS = "dlq.purge"
PAUSE = "pause"
RESUME = "resume"
ERASURE = "erasure"
CANCEL = "cancel"
CALLBACK_REQUEUE = "callbacks.requeue"
OPTOUT_ADD = "optout.add"
OPTOUT_REMOVE = "optout.remove"
ACTIONS = (
    REQUEUE,
    RESOLVE,
    PURGE_DEAD_LETTERS,
    PAUSE,
    RESUME,
    ERASURE,
    CANCEL,
    CALLBACK_REQUEUE,
    OPTOUT_ADD,
    OPTOUT_REMOVE,
)
"""Every action the stream records (``smsq audit --action``)."""
TARGETS_MAX = 100
"""Keys or lanes kept in one entry; ``count`` always says how many there were."""
READ_BATCH = 500
"""Entries read per ``XREVRANGE`` while filtering."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One operator action."""

    action: str
    actor: str
    """Who: ``user@host`` (CLI ``--by``), ``web:<user>`` (admin page), ``worker <name>``."""
    why: str = ""
    count: int = 0
    """How many items the action changed (messages, dead letters, lanes, erased items)."""
    targets: tuple[str, ...] = ()
    """Message keys, dead-letter ids, lanes or callback event ids (at most :data:`TARGETS_MAX`);
    none for erasure."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """Erasure only: how many items of each kind were erased."""
    erasure_id: str = ""
    """Erasure only: a random id to quote to the person (nothing derived from the number)."""
    entry_id: str = ""
    """The stream id, set once stored (milliseconds since the epoch, Redis clock)."""

    @property
    def at(self) -> str:
        """When, as ISO-8601 UTC with milliseconds (from the stream id)."""
        if not self.entry_id:
            return ""
        ms = int(self.entry_id.split("-", 1)[0])
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")

    def fields(self) -> dict[str, str]:
        """The stream entry's fields (all strings)."""
        return {
            "action": self.action,
            "actor": self.actor,
            "why": self.why,
            "count": str(self.count),
            "targets": json.dumps(list(self.targets[:TARGETS_MAX]), ensure_ascii=False),
            "counts": json.dumps(dict(self.counts), sort_keys=True),
            "erasure_id": self.erasure_id,
        }

    @classmethod
    def from_stream(cls, entry_id: str, raw: Mapping[str, str]) -> AuditEntry:
        return cls(
            action=raw.get("action", ""),
            actor=raw.get("actor", ""),
            why=raw.get("why", ""),
            count=int(raw.get("count") or 0),
            targets=tuple(json.loads(raw.get("targets") or "[]")),
            counts=json.loads(raw.get("counts") or "{}"),
            erasure_id=raw.get("erasure_id", ""),
            entry_id=entry_id,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.entry_id,
            "at": self.at,
            "action": self.action,
            "actor": self.actor,
            "why": self.why,
            "count": self.count,
            "targets": list(self.targets),
            "counts": dict(self.counts),
            "erasure_id": self.erasure_id,
        }


def new_erasure_id() -> str:
    """A random id for one erasure record (128 bits, nothing derived from the number)."""
    return uuid.uuid4().hex


class AuditLog:
    """Append to and read the audit stream."""

    def __init__(self, connection: Redis, *, ttl_s: int) -> None:
        self._redis = connection
        self._ttl_s = ttl_s
        self._append = connection.register_script(lua.load("audit_append"))

    def record(self, entry: AuditEntry) -> AuditEntry:
        """Append ``entry``; return it with its stream id (its time)."""
        entry_id = self._append(
            keys=[keys.AUDIT], args=[self._ttl_s, json.dumps(entry.fields(), ensure_ascii=False)]
        )
        return AuditEntry.from_stream(decoded(entry_id), entry.fields())

    def record_changes(
        self, action: str, *, actor: str, targets: Iterable[str], why: str = ""
    ) -> AuditEntry | None:
        """Record an action on ``targets`` (keys, ids or lanes); nothing when there are none."""
        done = list(targets)
        if not done:
            return None
        return self.record(
            AuditEntry(action=action, actor=actor, why=why, count=len(done), targets=tuple(done))
        )

    def entries(
        self, *, since: datetime | None = None, action: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """Newest first: at most ``limit`` entries at or after ``since`` of ``action``."""
        low = "-" if since is None else str(int(since.timestamp() * 1000))
        high = "+"
        out: list[AuditEntry] = []
        while len(out) < limit:
            reply: Any = self._redis.xrevrange(keys.AUDIT, high, low, count=READ_BATCH)
            batch: list[Any] = list(reply or [])
            for raw_id, raw in batch:
                entry = AuditEntry.from_stream(decoded(raw_id), decoded_hash(raw))
                if action is None or entry.action == action:
                    out.append(entry)
                    if len(out) >= limit:
                        break
            if len(batch) < READ_BATCH:
                break
            high = f"({decoded(batch[-1][0])}"
        return out
