"""Per producer account SMS quotas (``daily_quota``, ``monthly_quota`` in ``SMSQ_PRODUCERS``),
counted in Redis in SMS parts x recipients, so every gateway process shares them.

A request is charged when it is accepted, both quotas or neither in one script, and refunded
when it turns out to be a duplicate of one already charged or when its enqueue fails. Days and
months are Paris calendar ones (the counters reset at midnight there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from producers import keys
from producers.store import decoded
from worker.store import lua


if TYPE_CHECKING:
    from redis import Redis

PARIS = ZoneInfo("Europe/Paris")
DAY_TTL_S = 2 * 24 * 3600
MONTH_TTL_S = 32 * 24 * 3600


@dataclass(frozen=True, slots=True)
class OverQuota:
    period: str
    """``day`` or ``month``."""
    used: int
    limit: int
    cost: int

    @property
    def text(self) -> str:
        when = "today" if self.period == "day" else "this month"
        return (
            f"Quota exceeded: this account has sent {self.used} of its {self.limit} SMS {when} "
            f"(Paris time) and this request needs {self.cost}; nothing was enqueued"
        )


class Quotas:
    def __init__(self, connection: Redis) -> None:
        self._redis = connection
        self._take = connection.register_script(lua.load("quota_take"))

    def take(
        self,
        login: str,
        cost: int,
        *,
        key: str,
        daily: int | None,
        monthly: int | None,
        now: datetime | None = None,
    ) -> OverQuota | bool:
        """Charge ``cost`` to ``login`` for the request of ``key``: True when charged, False
        when there was nothing to charge (no quota, or smsq already holds that key: a
        duplicate), or the refusal when a quota would be passed (nothing charged then)."""
        if not daily and not monthly:
            return False
        day, month = _keys(login, now)
        mid = keys.message_id(key)
        answer = self._take(
            keys=[day, month, keys.message(mid), keys.tombstone(mid)],
            args=[cost, daily or 0, monthly or 0, DAY_TTL_S, MONTH_TTL_S],
        )
        outcome = decoded(answer[0])
        if outcome in ("charged", "known"):
            return outcome == "charged"
        return OverQuota(outcome, int(answer[1]), int(answer[2]), cost)

    def refund(self, login: str, cost: int, *, now: datetime | None = None) -> None:
        """Give back what :meth:`take` charged (a duplicate, a failed enqueue)."""
        day, month = _keys(login, now)
        pipe = self._redis.pipeline(transaction=True)
        pipe.decrby(day, cost)
        pipe.decrby(month, cost)
        pipe.execute()

    def used(self, login: str, *, now: datetime | None = None) -> tuple[int, int]:
        day, month = _keys(login, now)
        values = self._redis.mget([day, month])
        return int(values[0] or 0), int(values[1] or 0)


def _keys(login: str, now: datetime | None) -> tuple[str, str]:
    local = (now or datetime.now(UTC)).astimezone(PARIS)
    return (
        keys.quota(login, local.strftime("d%Y%m%d")),
        keys.quota(login, local.strftime("m%Y%m")),
    )
