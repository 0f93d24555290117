"""Parsing AllMySMS's simulateCampaign and getBlacklist answers, leniently, into values; the
gateway answers simulateCampaign in the same shape, so producers read it with the same code.

Numbers arrive as JSON ints or strings (simulate is said to answer ints, sendSms strings:
allmysms-api.md §3.1), ``invalidNumbers`` as a ``|``-separated string (a list is taken too).
Anything unusable raises :class:`OutcomeUnknownError` naming the endpoint and what is missing,
never a traceback: for these endpoints nothing is sent either way, the error only says the
answer cannot be read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from producers.errors import OutcomeUnknownError


STATUS_MIN, STATUS_MAX = 100, 118
"""The business statuses AllMySMS answers (allmysms-api.md §3.3)."""
WOULD_SEND_STATUSES = frozenset({100, 101, 113})
"""A simulation with one of these statuses would send to ``nb_contacts`` recipients; its
answer must carry the counts."""
TEXT_113 = "Certains numéros de téléphone sont invalides ou non pris en charge"
"""AllMySMS's statusText for 113 (``worker.allmysms.flux.STATUS_TEXTS`` holds the table)."""
_INTEGER = re.compile(r"\s*-?[0-9]{1,18}\s*")
"""A count as a string; 18 digits at most, well under int()'s 4,300-digit limit."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Simulation:
    """What a send of this flux would cost, as simulateCampaign answers it."""

    status: int
    status_text: str
    nb_sms: int = 0
    """SMS parts billed: each valid recipient's parts, summed."""
    nb_credits: int = 0
    nb_contacts: int = 0
    """Recipients that would get the message."""
    invalid_numbers: list[str] = field(default_factory=list)
    """Numbers AllMySMS would refuse (invalid, or on the STOP list), as sent."""

    @property
    def would_send(self) -> bool:
        """Whether sendSms would send this flux (100, 101 or 113); a refusal (102-118) or 114
        (no valid number) would send nothing."""
        return self.status in WOULD_SEND_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "status_text": self.status_text,
            "nb_sms": self.nb_sms,
            "nb_credits": self.nb_credits,
            "nb_contacts": self.nb_contacts,
            "invalid_numbers": list(self.invalid_numbers),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BlacklistEntry:
    """One number on the account's STOP list."""

    phone_number: str
    comment: str = ""
    """``stop``, ``Refused``, ``manual unsubscribe`` as known; any text is kept."""
    reception_date: str = ""
    """``YYYY-MM-DD HH:MM:SS`` as AllMySMS writes it (Paris time); kept as text."""


def combine(simulations: list[Simulation]) -> Simulation:
    """One simulation for the parts of one message, as one sendSms of the whole would answer.

    Counts and invalid numbers are summed in part order. The status is the first part's refusal
    (a status that would not send, other than 114), else 114 when no part has a valid number,
    else 113 when some part had invalid numbers (113 or 114), else the first part's (100, 101).

    Raises:
        ValueError: ``simulations`` is empty.
    """
    if not simulations:
        raise ValueError("simulations: at least one is needed")
    first = simulations[0]
    refusals = [s for s in simulations if not s.would_send and s.status != 114]
    if refusals:
        status, text = refusals[0].status, refusals[0].status_text
    elif not any(s.would_send for s in simulations):
        status, text = first.status, first.status_text
    elif len(simulations) > 1 and any(s.status in (113, 114) for s in simulations):
        partial = [s.status_text for s in simulations if s.status == 113]
        status, text = 113, partial[0] if partial else TEXT_113
    else:
        status, text = first.status, first.status_text
    return Simulation(
        status=status,
        status_text=text,
        nb_sms=sum(s.nb_sms for s in simulations),
        nb_credits=sum(s.nb_credits for s in simulations),
        nb_contacts=sum(s.nb_contacts for s in simulations),
        invalid_numbers=[n for s in simulations for n in s.invalid_numbers],
    )


def parse_simulation(http_status: int, body: bytes) -> Simulation:
    """Read a simulateCampaign answer.

    A refusal (``{"status", "statusText"}`` only) is a :class:`Simulation` with zero counts; a
    status in :data:`WOULD_SEND_STATUSES` must carry ``nbSms``, ``nbCredits`` and
    ``nbContacts``; 114 may leave them out (0).

    Raises:
        OutcomeUnknownError: not HTTP 200, not a JSON object, no numeric ``status`` in 100-118,
            or a count missing or not a whole number (the message names the key).
    """
    data = _object("simulateCampaign", http_status, body)
    status = as_int(data.get("status"))
    if status is None or not STATUS_MIN <= status <= STATUS_MAX:
        raise OutcomeUnknownError(
            "AllMySMS simulateCampaign answered without a status from 100 to 118",
            http_status=200,
        )
    counts: dict[str, int] = {}
    for key in ("nbSms", "nbCredits", "nbContacts"):
        raw, value = data.get(key), as_int(data.get(key))
        missing = value is None and (status in WOULD_SEND_STATUSES or raw is not None)
        if missing or (value is not None and value < 0):
            raise OutcomeUnknownError(
                f"AllMySMS simulateCampaign answered status {status} without a whole "
                f"non-negative {key}",
                http_status=200,
            )
        counts[key] = value or 0
    return Simulation(
        status=status,
        status_text=_text(data.get("statusText")),
        nb_sms=counts["nbSms"],
        nb_credits=counts["nbCredits"],
        nb_contacts=counts["nbContacts"],
        invalid_numbers=invalid_numbers(data.get("invalidNumbers")),
    )


def parse_blacklist(http_status: int, body: bytes) -> list[BlacklistEntry]:
    """Read a getBlacklist answer, ``{"blacklist": [{phoneNumber, comment, receptionDate}]}``.

    Whether an empty list comes back as ``[]``, ``""`` or null is unknown: all three are read
    as empty; an entry without a ``phoneNumber`` is an error, not skipped.

    Raises:
        OutcomeUnknownError: not HTTP 200, not a JSON object, no ``blacklist`` list (an error
            answer such as 102 names its status), or an entry that is not an object with a
            ``phoneNumber`` (named by its position).
    """
    data = _object("getBlacklist", http_status, body)
    if "blacklist" not in data:
        status = as_int(data.get("status"))
        detail = f" (status {status})" if status is not None else ""
        raise OutcomeUnknownError(
            f"AllMySMS getBlacklist answered without a blacklist{detail}", http_status=200
        )
    raw = data["blacklist"]
    if raw is None or raw == "":
        return []
    if not isinstance(raw, list):
        raise OutcomeUnknownError(
            "AllMySMS getBlacklist answered a blacklist that is not a list", http_status=200
        )
    entries: list[BlacklistEntry] = []
    for position, item in enumerate(raw):
        phone = _text(item.get("phoneNumber")) if isinstance(item, dict) else ""
        if not phone:
            raise OutcomeUnknownError(
                f"AllMySMS getBlacklist answered blacklist[{position}] without a phoneNumber",
                http_status=200,
            )
        entries.append(
            BlacklistEntry(
                phone_number=phone,
                comment=_text(item.get("comment")),
                reception_date=_text(item.get("receptionDate")),
            )
        )
    return entries


def invalid_numbers(value: object) -> list[str]:
    """``invalidNumbers`` as a list: a ``|``-separated string, or a list of numbers."""
    if isinstance(value, list):
        return [t for t in (_text(v) for v in value) if t]
    return [n.strip() for n in _text(value).split("|") if n.strip()]


def as_int(value: object) -> int | None:
    """A JSON int, a whole float or a decimal string as an int; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def _object(endpoint: str, http_status: int, body: bytes) -> dict[str, Any]:
    if http_status != 200:
        raise OutcomeUnknownError(
            f"AllMySMS {endpoint} answered HTTP {http_status}", http_status=http_status
        )
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        raise OutcomeUnknownError(
            f"AllMySMS {endpoint} answered HTTP 200 with a body that is not JSON", http_status=200
        ) from None
    if not isinstance(data, dict):
        raise OutcomeUnknownError(
            f"AllMySMS {endpoint} answered HTTP 200 with JSON that is not an object",
            http_status=200,
        )
    return data


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""
