"""The last known AllMySMS credits balance, in Redis (``smsq:credits``), shared by every worker.

Written by the credits watch (getInfo) and by every sendSms answer carrying ``credits``; read
by ``/metrics``, ``smsq stats`` and the admin page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from producers import keys
from producers.store import decoded


if TYPE_CHECKING:
    from redis import Redis


CREDITS_PER_FR_SMS = 15
"""What one SMS segment to a French number costs (AllMySMS ``getCreditsByCountryIsoCode`` FR)."""


@dataclass(frozen=True, slots=True)
class Balance:
    credits: int
    at: float
    """When it was learnt (epoch seconds)."""
    source: str
    """``getInfo`` or ``sendSms``."""

    @property
    def fr_sms_left(self) -> int:
        """How many SMS segments to France the balance still pays for."""
        return self.credits // CREDITS_PER_FR_SMS

    def age_s(self, now: float | None = None) -> float:
        return max((time.time() if now is None else now) - self.at, 0.0)


class CreditsStore:
    def __init__(self, connection: Redis) -> None:
        self._redis = connection

    def record(self, credits: int, *, source: str, at: float | None = None) -> Balance:
        """Store a balance; negative figures are stored as 0."""
        balance = Balance(max(credits, 0), time.time() if at is None else at, source)
        self._redis.hset(
            keys.CREDITS,
            mapping={"credits": balance.credits, "at": repr(balance.at), "source": source},
        )
        return balance

    def get(self) -> Balance | None:
        """The last balance, or None when none was ever learnt (or the hash is unreadable)."""
        raw = {decoded(k): decoded(v) for k, v in self._redis.hgetall(keys.CREDITS).items()}
        try:
            return Balance(int(raw["credits"]), float(raw["at"]), raw.get("source", ""))
        except (KeyError, ValueError):
            return None
