"""The kill switch: pause and resume lanes, shared by every worker through Redis.

A paused lane is skipped by every worker's next dequeue (each pass reads the switch inside the
dequeue script), so sending stops within one pass; the send in flight finishes and nothing
queued is lost. ``*`` pauses every lane. Workers pause everything themselves when AllMySMS says
the account cannot send (102 bad credentials, 103/104 credit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from producers import keys
from producers.contract import Lane
from producers.records import utc_now_iso
from producers.store import decoded


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
    def __init__(self, connection: Redis) -> None:
        self._redis = connection

    def pause(self, lane: str | None, *, reason: str, by: str) -> Pause:
        pause = Pause(lane_names(lane), reason, by, utc_now_iso())
        self._redis.hset(
            keys.PAUSED, pause.lane, json.dumps({"reason": reason, "by": by, "at": pause.at})
        )
        return pause

    def resume(self, lane: str | None) -> list[str]:
        """Lift the pause of ``lane``, or every pause when ``lane`` is None; return what was
        lifted."""
        if lane is None:
            lifted = [decoded(k) for k in self._redis.hkeys(keys.PAUSED)]
            self._redis.delete(keys.PAUSED)
            return sorted(lifted)
        name = lane_names(lane)
        return [name] if self._redis.hdel(keys.PAUSED, name) else []

    def paused(self) -> list[Pause]:
        return [
            Pause(decoded(lane), **json.loads(info))
            for lane, info in sorted(self._redis.hgetall(keys.PAUSED).items())
        ]
