"""Blacklist mirror: AllMySMS's STOP list (``getBlacklist``) copied into the suppression list.

A live worker asks ``getBlacklist`` every ``blacklist_poll_interval_s`` under a Redis lock (one
worker at a time, like the credits watch) and adds every number it lists to ``smsq:optout``
(source ``blacklist``, AllMySMS's comment kept: "stop", "Refused", "manual unsubscribe"). It only
adds: a number that leaves AllMySMS's list stays opted out in smsq until an operator removes it.
A failure is logged and changes nothing; the next turn tries again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from producers import keys
from producers.errors import PhoneError, SmsqError
from producers.optouts import Source
from producers.phones import normalise_phone
from worker.send.turns import Turn


if TYPE_CHECKING:
    from redis import Redis

    from producers.optouts import OptOuts
    from worker.allmysms.client import AllMySmsClient

log = structlog.get_logger()

RETENTION_INTERVAL_S = 3600.0
"""How often one worker drops opt-outs past their retention."""


class OptOutRetention:
    """Drops suppression-list entries older than ``SMSQ_OPTOUT_RETENTION_S`` (0: kept until
    removed), once per ``RETENTION_INTERVAL_S`` by one worker at a time."""

    def __init__(self, connection: Redis, optouts: OptOuts, *, retention_s: float, by: str) -> None:
        self._optouts = optouts
        self._retention_s = retention_s
        self._turn = Turn(
            connection,
            keys.OPTOUT_RETENTION_LOCK,
            interval_s=RETENTION_INTERVAL_S if retention_s > 0 else 0,
            by=by,
        )

    def maybe_run(self) -> int | None:
        if not self._turn.due():
            return None
        dropped = self._optouts.expire(older_than_s=self._retention_s)
        if dropped:
            log.info("sms.optout.expired", entries=dropped, retention_s=self._retention_s)
        return dropped


class BlacklistMirror:
    def __init__(
        self,
        connection: Redis,
        client: AllMySmsClient,
        optouts: OptOuts,
        *,
        interval_s: float,
        default_region: str,
        by: str,
    ) -> None:
        self._client = client
        self._optouts = optouts
        self._region = default_region
        self._turn = Turn(connection, keys.BLACKLIST_LOCK, interval_s=interval_s, by=by)

    def maybe_run(self) -> int | None:
        """Mirror the list if this worker's interval has passed and no other worker holds the
        turn: how many numbers were new, or None (not due, not this worker's turn, failed)."""
        return self.poll() if self._turn.due() else None

    def poll(self) -> int | None:
        """Ask getBlacklist once and add what it lists; None when it failed."""
        try:
            entries = self._client.get_blacklist()
        except SmsqError as exc:
            log.warning("sms.blacklist.unavailable", error=type(exc).__name__, detail=str(exc))
            return None
        numbers: list[tuple[str, str]] = []
        unreadable = 0
        for entry in entries:
            try:
                phone = normalise_phone(_international(entry.phone_number), self._region)
            except PhoneError:
                unreadable += 1
                continue
            comment = f"getBlacklist: {entry.comment or '-'} {entry.reception_date}".strip()
            numbers.append((phone, comment))
        added = self._optouts.add_many(numbers, source=Source.BLACKLIST, by="allmysms")
        log.info(
            "sms.blacklist.mirrored",
            listed=len(entries),
            added=added,
            unreadable=unreadable,
        )
        return added


def _international(raw: str) -> str:
    """AllMySMS writes ``33612345678`` (no ``+``) or a national ``0612345678``."""
    digits = raw.strip().replace(" ", "")
    return f"+{digits}" if digits.isdigit() and not digits.startswith("0") else digits
