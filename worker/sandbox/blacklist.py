"""The sandbox's STOP list: entries added through ``/_sandbox/blacklist``, answered by
``getBlacklist`` and refused by ``sendSms`` / ``simulateCampaign``.

The caller (``SandboxProvider``) holds its lock around every method.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from worker.sandbox.rules import PARIS, normalise_number


COMMENTS = ("stop", "Refused", "manual unsubscribe")
"""The ``comment`` values AllMySMS is known to give (allmysms-api.md §4); others are kept too."""
COMMENT_MAX_CHARS = 200
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
"""``receptionDate`` as AllMySMS writes dates (Paris local time)."""
_KEYS = frozenset({"phoneNumber", "comment", "receptionDate"})


class Blacklist:
    """Numbers on the STOP list, by international digits, in the order they were added."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, str]] = {}

    def __contains__(self, number: object) -> bool:
        return number in self._entries

    def add(self, spec: Mapping[str, Any], now: datetime | None = None) -> dict[str, str]:
        """Put a number on the list (again: its entry is replaced) and return its entry.

        Args:
            spec: ``{"phoneNumber": ..., "comment": "stop", "receptionDate": "YYYY-MM-DD
                HH:MM:SS"}``; comment defaults to ``stop``, the date to now (Paris time).
            now: the current time (aware), for the default date.

        Raises:
            ValueError: naming the first bad key and why.
        """
        if not isinstance(spec, Mapping):
            raise ValueError("blacklist: expected an object")
        unknown = sorted(set(spec) - _KEYS)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key (allowed: {', '.join(sorted(_KEYS))})")
        phone = spec.get("phoneNumber")
        if not isinstance(phone, str) or not phone.strip():
            raise ValueError("phoneNumber: required, a phone number")
        number = normalise_number(phone)
        if number is None:
            raise ValueError("phoneNumber: is not a valid number")
        comment = spec.get("comment", "stop")
        if not isinstance(comment, str) or not comment or len(comment) > COMMENT_MAX_CHARS:
            raise ValueError(f"comment: must be a string of 1 to {COMMENT_MAX_CHARS} characters")
        date = spec.get("receptionDate")
        if date is None:
            date = (now or datetime.now(UTC)).astimezone(PARIS).strftime(DATE_FORMAT)
        elif not isinstance(date, str) or not _is_date(date):
            raise ValueError("receptionDate: must be YYYY-MM-DD HH:MM:SS")
        entry = {"phoneNumber": number, "comment": comment, "receptionDate": date}
        self._entries.pop(number, None)
        self._entries[number] = entry
        return dict(entry)

    def entries(self) -> list[dict[str, str]]:
        """Every entry, oldest first, as getBlacklist lists them."""
        return [dict(entry) for entry in self._entries.values()]

    def clear(self) -> None:
        self._entries.clear()


def _is_date(value: str) -> bool:
    try:
        datetime.strptime(value, DATE_FORMAT)  # noqa: DTZ007 - a Paris wall-clock date, no zone
    except ValueError:
        return False
    return True
