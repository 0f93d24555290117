"""Long-wait alert (Laravel Horizon's LongWaitDetected): a lane whose oldest waiting message has
waited longer than its threshold (``SMSQ_LONG_WAIT_S``) is logged at error, by one worker per
``CHECK_INTERVAL_S``; the admin overview shows the same from the same figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from producers import keys
from worker.send.turns import Turn
from worker.store.stats import collect


if TYPE_CHECKING:
    from collections.abc import Mapping

    from redis import Redis

    from worker.store.stats import Stats

log = structlog.get_logger()

CHECK_INTERVAL_S = 60.0


def long_waits(stats: Stats, thresholds: Mapping[str, float]) -> list[tuple[str, float, float]]:
    """``(lane, oldest wait in s, threshold in s)`` of each lane over its threshold."""
    return [
        (lane.lane, lane.oldest_age_s, thresholds[lane.lane])
        for lane in stats.lanes
        if lane.oldest_age_s is not None
        and thresholds.get(lane.lane, 0) > 0
        and lane.oldest_age_s > thresholds[lane.lane]
    ]


class LongWaitWatch:
    def __init__(
        self,
        connection: Redis,
        thresholds: Mapping[str, float],
        *,
        by: str,
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self._redis = connection
        self._thresholds = thresholds
        self._turn = Turn(
            connection,
            keys.LONG_WAIT_LOCK,
            interval_s=interval_s if any(t > 0 for t in thresholds.values()) else 0,
            by=by,
        )

    def maybe_run(self) -> list[tuple[str, float, float]] | None:
        """The lanes over their threshold (each logged at error), when it is this worker's
        turn; None otherwise."""
        if not self._turn.due():
            return None
        found = long_waits(collect(self._redis), self._thresholds)
        for lane, age_s, threshold_s in found:
            log.error(
                "sms.lane.long_wait",
                lane=lane,
                oldest_age_s=round(age_s, 1),
                threshold_s=threshold_s,
            )
        return found
