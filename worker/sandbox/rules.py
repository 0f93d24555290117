"""The sandbox's own flux rules: which numbers it refuses, what a send costs, its full reply.

Parsing, the checks every provider makes and rendering live in ``worker.allmysms.flux`` (shared
with the gateway) and are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from producers.errors import FluxError
from producers.segments import count_segments
from worker.allmysms.flux import (
    MESSAGE_MAX_CHARS,
    PARIS,
    STATUS_TEXTS,
    Flux,
    check_flux,
    error_reply,
    parse_date,
    parse_flux,
    personalise,
    render,
    sniff_format,
)


__all__ = [
    "BLACKLISTED_SUFFIX",
    "CREDITS_PER_SMS",
    "INVALID_SUFFIX",
    "MESSAGE_MAX_CHARS",
    "PARIS",
    "STATUS_TEXTS",
    "Flux",
    "FluxError",
    "Plan",
    "check_flux",
    "error_reply",
    "normalise_number",
    "parse_date",
    "parse_flux",
    "personalise",
    "plan_send",
    "render",
    "simulation_reply",
    "sniff_format",
    "success_reply",
]

CREDITS_PER_SMS = 15
"""What one SMS part to France costs (getCreditsByCountryIsoCode FR → 15)."""

INVALID_SUFFIX = "999999"
"""Numbers ending so are unknown to the sandbox (status 113 / 114)."""
BLACKLISTED_SUFFIX = "888888"
"""Numbers ending so are on the STOP list: refused, yet the answer stays 100."""

_INTERNATIONAL = re.compile(r"(?:\+|00)(\d{8,15})")
_FRENCH_NATIONAL = re.compile(r"0([1-9]\d{8})")
_DIGITS = re.compile(r"\d{8,15}")


@dataclass(frozen=True, slots=True)
class Plan:
    """What a valid flux asks for once every number has been judged."""

    recipients: tuple[tuple[str, int], ...]
    """(international number, SMS parts of its personalised text) per sendable recipient."""
    refused: tuple[str, ...]
    """Invalid and blacklisted numbers, as received, in flux order."""
    some_invalid: bool
    scheduled: bool

    @property
    def nb_sms(self) -> int:
        return sum(parts for _, parts in self.recipients)


def normalise_number(number: str) -> str | None:
    """Return the international digits of a MOBILEPHONE, or ``None`` when malformed."""
    compact = number.replace(" ", "")
    for pattern, prefix in ((_INTERNATIONAL, ""), (_FRENCH_NATIONAL, "33"), (_DIGITS, "")):
        found = pattern.fullmatch(compact)
        if found:
            return prefix + found.group(found.lastindex or 0)
    return None


def plan_send(flux: Flux, now: datetime, blacklist: Container[str] = frozenset()) -> Plan:
    """Judge a parsed flux: message, date and every recipient.

    Args:
        flux: the parsed smsData.
        now: the current time (aware), to tell a deferred DATE from a past one.
        blacklist: international numbers on the STOP list (refused like the ``888888`` ones).

    Returns:
        The plan; it may hold no recipient (the caller answers 114 after the credit checks).

    Raises:
        FluxError: 107 (no SMS entry or one without MOBILEPHONE), 110, 111 or 115.
    """
    scheduled = check_flux(flux, now)
    message = flux.message or ""
    recipients: list[tuple[str, int]] = []
    refused: list[str] = []
    some_invalid = False
    for entry in flux.entries:
        number = normalise_number(entry["MOBILEPHONE"])
        if number is None or number.endswith(INVALID_SUFFIX):
            some_invalid = True
            refused.append(entry["MOBILEPHONE"])
        elif number.endswith(BLACKLISTED_SUFFIX) or number in blacklist:
            refused.append(entry["MOBILEPHONE"])
        else:
            text = personalise(message, entry)
            recipients.append((number, count_segments(text).segments))
    return Plan(tuple(recipients), tuple(refused), some_invalid, scheduled)


def success_reply(
    plan: Plan, *, campaign_id: str, credits_left: int, sms_ids: list[str]
) -> dict[str, Any]:
    """The full sendSms body: 113 when some numbers were invalid, else 101 or 100."""
    status = 113 if plan.some_invalid else 101 if plan.scheduled else 100
    return {
        "status": status,
        "statusText": STATUS_TEXTS[status],
        "invalidNumbers": "|".join(plan.refused),
        "campaignId": campaign_id,
        "credits": str(credits_left),
        "creditsUsed": str(CREDITS_PER_SMS * plan.nb_sms),
        "nbContacts": str(len(plan.recipients)),
        "nbSms": str(plan.nb_sms),
        "smsIds": [
            {"phoneNumber": number, "smsId": sms_id}
            for (number, _), sms_id in zip(plan.recipients, sms_ids, strict=True)
        ],
    }


def simulation_reply(plan: Plan) -> dict[str, Any]:
    """The simulateCampaign body: what the send would cost, nothing sent.

    Its keys are those AllMySMS documents (``status``, ``statusText``, ``invalidNumbers``,
    ``nbCredits``, ``nbContacts``, ``nbSms``); the counts are JSON ints, as simulate answers
    them (allmysms-api.md §3.1). The status follows sendSms: 113 when some numbers are invalid,
    114 when no recipient is left (counts 0, the refused numbers still listed), else 101 for a
    future DATE, else 100. Whether the real endpoint answers 101 or checks the balance is
    unknown: the sandbox answers 101 and never refuses a simulation for credits.
    """
    if not plan.recipients:
        status = 114
    else:
        status = 113 if plan.some_invalid else 101 if plan.scheduled else 100
    return {
        "status": status,
        "statusText": STATUS_TEXTS[status],
        "invalidNumbers": "|".join(plan.refused),
        "nbCredits": CREDITS_PER_SMS * plan.nb_sms,
        "nbContacts": len(plan.recipients),
        "nbSms": plan.nb_sms,
    }
