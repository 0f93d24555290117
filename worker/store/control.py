"""The kill switch: pause and resume lanes, shared by every worker through Redis.

A paused lane is skipped by every worker's next dequeue (each pass reads the switch inside the
dequeue script), so sending stops within one pass; the send in flight finishes and nothing
queued is lost. ``*`` pauses every lane. Workers pause everything themselves when AllMySMS says
the account cannot send (102 bad credentials, 103/104 credit). Every pause and every resume
that lifted something is recorded in the audit stream (:mod:`worker.store.audit`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from producers import keys
from producers.contract import Lane
from producers.durability import Barrier
from producers.records import utc_now_iso
from producers.store import decoded
from worker.settings import AUDIT_TTL_S
from worker.store import lua
from worker.store.audit import PAUSE, RESUME, AuditLog


if TYPE_CHECKING:
    from redis import Redis

ALL_LANES = "*"


@dataclass(frozen=True, slots=True)
class Pause:
    lane: str
    """A lane name, or ``*`` for all lanes."""
    reason: str
    by: str
    at: str


def lane_names(lane: str | None) -> str:
    """Validate a lane argument: None or ``all`` → ``*``.

    Raises:
        ValueError: not a lane name.
    """
    if lane in (None, "all", ALL_LANES):
        return ALL_LANES
    return Lane(lane).value


class Switch:
    def __init__(
        self, connection: Redis, *, audit_ttl_s: int = AUDIT_TTL_S, barrier: Barrier | None = None
    ) -> None:
        self._redis = connection
        self._audit = AuditLog(connection, ttl_s=audit_ttl_s)
        self._barrier = barrier or Barrier()
        """A pause is acknowledged only once replicas have it: a failover must not undo it."""
        self._pause_unless = connection.register_script(lua.load("control_pause_unless"))
        self._resume_own = connection.register_script(lua.load("control_resume_own"))

    def pause(self, lane: str | None, *, reason: str, by: str) -> Pause:
        """Pause ``lane`` (None: every lane), recorded in the audit stream with ``by`` and
        ``reason``."""
        pause = Pause(lane_names(lane), reason, by, utc_now_iso())
        self._redis.hset(
            keys.PAUSED, pause.lane, json.dumps({"reason": reason, "by": by, "at": pause.at})
        )
        self._audit.record_changes(PAUSE, actor=by, targets=[pause.lane], why=reason)
        self._barrier.confirm(self._redis)
        return pause

    def resume(self, lane: str | None, *, by: str, why: str = "") -> list[str]:
        """Lift the pause of ``lane``, or every pause when ``lane`` is None; return what was
        lifted (recorded in the audit stream with ``by`` when it is not nothing)."""
        if lane is None:
            pipe = self._redis.pipeline()
            pipe.hkeys(keys.PAUSED)
            pipe.delete(keys.PAUSED)
            names, _ = pipe.execute()
            lifted = sorted(decoded(k) for k in names)
        else:
            name = lane_names(lane)
            lifted = [name] if self._redis.hdel(keys.PAUSED, name) else []
        self._audit.record_changes(RESUME, actor=by, targets=lifted, why=why)
        self._barrier.confirm(self._redis)
        return lifted

    def pause_unless_paused(self, lane: str, *, reason: str, by: str) -> Pause | None:
        """Pause ``lane`` unless it or every lane is paused already (one compare-and-set, so an
        operator's pause set at the same moment is never overwritten); None when it was."""
        pause = Pause(lane_names(lane), reason, by, utc_now_iso())
        stored = json.dumps({"reason": reason, "by": by, "at": pause.at})
        if not self._pause_unless(keys=[keys.PAUSED], args=[pause.lane, ALL_LANES, stored]):
            return None
        self._audit.record_changes(PAUSE, actor=by, targets=[pause.lane], why=reason)
        self._barrier.confirm(self._redis)
        return pause

    def resume_own(self, lane: str, *, reason_prefix: str, by: str, why: str) -> bool:
        """Lift ``lane``'s pause only if its reason starts with ``reason_prefix`` (one
        compare-and-set: a pause an operator put in its place stays); whether it lifted it."""
        name = lane_names(lane)
        if not self._resume_own(keys=[keys.PAUSED], args=[name, reason_prefix]):
            return False
        self._audit.record_changes(RESUME, actor=by, targets=[name], why=why)
        self._barrier.confirm(self._redis)
        return True

    def paused(self) -> list[Pause]:
        return [
            Pause(decoded(lane), **json.loads(info))
            for lane, info in sorted(self._redis.hgetall(keys.PAUSED).items())
        ]
