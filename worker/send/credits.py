"""Credits watch: the AllMySMS balance, and the bulk lane paused before a 103 does.

A live worker polls ``getInfo`` every ``credits_poll_interval_s`` under a Redis lock (one
worker at a time, like the reconciler); every sendSms answer's ``credits`` feeds the same
figure (:meth:`CreditsWatch.observe`). At or below ``credits_low`` the bulk lane is paused
(once per crossing, logged at error); with ``credits_auto_resume`` the pause is lifted once the
balance is back above the threshold, and only when the credits check itself made it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from producers import keys
from producers.contract import Lane
from producers.errors import SmsqError
from worker.send.turns import Turn
from worker.settings import AUDIT_TTL_S
from worker.store.control import Switch
from worker.store.credits import Balance, CreditsStore


if TYPE_CHECKING:
    from redis import Redis

    from worker.allmysms.client import AllMySmsClient

log = structlog.get_logger()

REASON_PREFIX = "credits check: "
"""Every pause the credits check makes has a reason starting with this; auto-resume lifts no
other pause."""


class CreditsWatch:
    def __init__(
        self,
        connection: Redis,
        client: AllMySmsClient,
        *,
        interval_s: float,
        low: int,
        auto_resume: bool,
        by: str,
        audit_ttl_s: int = AUDIT_TTL_S,
    ) -> None:
        self._redis = connection
        self._client = client
        self._store = CreditsStore(connection)
        self._switch = Switch(connection, audit_ttl_s=audit_ttl_s)
        self._low = low
        self._auto_resume = auto_resume
        self._by = by
        self._turn = Turn(connection, keys.CREDITS_LOCK, interval_s=interval_s, by=by)

    def maybe_run(self) -> Balance | None:
        """Poll getInfo if this worker's interval has passed and no other worker holds the
        turn; None when not due, not this worker's turn, or getInfo failed."""
        return self.poll() if self._turn.due() else None

    def poll(self) -> Balance | None:
        """Ask getInfo once; a failure is logged (never with the apiKey) and changes nothing."""
        try:
            credits = self._client.get_info()
        except SmsqError as exc:
            log.warning("sms.credits.unavailable", error=type(exc).__name__, detail=str(exc))
            return None
        return self.observe(credits, source="getInfo")

    def observe(self, credits: int, *, source: str) -> Balance:
        """Store a balance and act on the threshold."""
        balance = self._store.record(credits, source=source)
        if self._low > 0:
            self._check(balance)
        return balance

    def _check(self, balance: Balance) -> None:
        if balance.credits <= self._low:
            if not self._redis.hsetnx(keys.CREDITS, "low", "1"):
                return  # already low: logged and paused at the crossing
            log.error("sms.credits.low", credits=balance.credits, threshold=self._low, lane="bulk")
            self._switch.pause_unless_paused(
                Lane.BULK.value,
                reason=f"{REASON_PREFIX}{balance.credits} credits left, at or below "
                f"SMSQ_CREDITS_LOW={self._low}",
                by=self._by,
            )
            return
        if not self._redis.hdel(keys.CREDITS, "low"):
            return
        log.warning("sms.credits.recovered", credits=balance.credits, threshold=self._low)
        if not self._auto_resume:
            return
        if self._switch.resume_own(
            Lane.BULK.value,
            reason_prefix=REASON_PREFIX,
            by=self._by,
            why=f"{REASON_PREFIX}{balance.credits} credits, above {self._low} again",
        ):
            log.warning("sms.credits.resumed", credits=balance.credits, lane="bulk")
