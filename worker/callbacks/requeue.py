"""Send dead callbacks again (``smsq callbacks --requeue``): pick them by id or by filters, and
put each back in the outbox with a fresh attempt budget, keeping its event id (receivers dedupe
on ``webhook-id``). ``smsq callbacks`` then delivers it as any other event, the outbound
destination policy checked again at connect time.

Each move is one Lua script (``worker/store/lua/outbox_requeue.lua``): an event requeued twice at
once, or requeued while ``smsq purge`` erases it, is moved once or not at all, never duplicated
nor brought back once erased. Each command that moved something is recorded in the audit stream
(action :data:`worker.store.audit.CALLBACK_REQUEUE`, the event ids; no phone number).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from producers import keys
from worker.callbacks.outbox import DeadCallback, dead_callbacks
from worker.store import lua
from worker.store.audit import CALLBACK_REQUEUE, AuditLog


if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis import Redis

LIST_MAX = 100_000
"""Dead callbacks read at most when selecting by filters."""
NOT_DEAD = "not a dead callback (unknown id, expired, erased, or already requeued)"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadQuery:
    """Filters on dead callbacks; None matches everything."""

    reason: str | None = None
    """Substring of the reason, any case."""
    since: datetime | None = None
    """Given up on at or after (timezone-aware)."""
    until: datetime | None = None
    """Given up on at or before (timezone-aware)."""
    producer: str | None = None
    """The producer account (login) of the request; "" for requests without one."""
    host: str | None = None
    """The callback URL's host, any case."""

    def is_empty(self) -> bool:
        return all(
            value is None
            for value in (self.reason, self.since, self.until, self.producer, self.host)
        )

    def matches(self, dead: DeadCallback) -> bool:
        return (
            (self.reason is None or self.reason.lower() in dead.reason.lower())
            and (self.since is None or dead.at >= self.since.timestamp())
            and (self.until is None or dead.at <= self.until.timestamp())
            and (self.producer is None or dead.producer == self.producer)
            and (self.host is None or (urlsplit(dead.url).hostname or "") == self.host.lower())
        )


@dataclass(frozen=True, slots=True)
class Requeued:
    """What a requeue did (or, with ``dry_run``, would do) to one event id."""

    event_id: str
    action: str
    """``requeued`` or ``refused``."""
    detail: str
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "action": self.action,
            "detail": self.detail,
            "dry_run": self.dry_run,
        }


def _detail(dead: DeadCallback) -> str:
    return (
        f"{dead.event.get('event')} {dead.event.get('key')} to "
        f"{urlsplit(dead.url).hostname or '?'} (was: {dead.reason})"
    )


class CallbackRequeue:
    """Select dead callbacks and put them back in the outbox."""

    def __init__(self, connection: Redis, *, audit_ttl_s: int) -> None:
        self._redis = connection
        self._audit = AuditLog(connection, ttl_s=audit_ttl_s)
        self._move = connection.register_script(lua.load("outbox_requeue"))

    def requeue(
        self,
        event_ids: Sequence[str],
        query: DeadQuery,
        *,
        actor: str,
        why: str = "",
        dry_run: bool = False,
    ) -> list[Requeued]:
        """Requeue ``event_ids`` and every dead callback ``query`` matches (when it filters),
        each once, in that order; an id that is not a dead callback is ``refused``."""
        listed = {d.event_id: d for d in dead_callbacks(self._redis, limit=LIST_MAX)}
        chosen = list(dict.fromkeys(event_ids))
        if not query.is_empty():
            chosen += [i for i, d in listed.items() if query.matches(d) and i not in chosen]
        out: list[Requeued] = []
        for event_id in chosen:
            dead = listed.get(event_id)
            if dead is None:
                out.append(Requeued(event_id, "refused", NOT_DEAD, dry_run))
            elif dry_run:
                out.append(Requeued(event_id, "requeued", _detail(dead), True))
            elif self._move_one(event_id):
                out.append(Requeued(event_id, "requeued", _detail(dead)))
            else:  # requeued or erased by someone else since it was listed
                out.append(Requeued(event_id, "refused", NOT_DEAD))
        if not dry_run:
            self._audit.record_changes(
                CALLBACK_REQUEUE,
                actor=actor,
                why=why,
                targets=[r.event_id for r in out if r.action == "requeued"],
            )
        return out

    def _move_one(self, event_id: str) -> bool:
        return bool(
            self._move(
                keys=[
                    keys.CALLBACK_DUE,
                    keys.CALLBACK_EVENTS,
                    keys.CALLBACK_ATTEMPTS,
                    keys.CALLBACK_DEAD,
                    keys.dead_callback(event_id),
                    keys.CALLBACK_DEAD_REASONS,
                    keys.CALLBACK_WAKE,
                    keys.METRICS,
                ],
                args=[event_id],
            )
        )
