"""From an AllMySMS flux to a wire-contract request, and from smsq's answer back to AllMySMS's.

Pure functions: no HTTP, no Redis. The field mapping is

=================  =====================================================================
AllMySMS           smsq contract v1
=================  =====================================================================
MESSAGE            ``text`` (``#param_N#`` placeholders kept; DYNAMIC is not needed)
SMS[].MOBILEPHONE  ``to[].phone``
SMS[].PARAM_n      ``to[].params[n-1]`` (missing ones are empty, as AllMySMS does)
TPOA               ``sender`` (blank = none)
DATE               ``send_at`` when it is in the future (Paris local time), else sent now
CAMPAIGN_NAME      ``campaign`` (blank = none)
CLIMSGID           ``key`` = ``gw:<login>:<CLIMSGID>`` unless an Idempotency-Key is sent
login              ``producer``
purpose            ``purpose`` (parameter or X-Smsq-Purpose; fixed for a marketing-only account)
transliterate      ``transliterate`` (parameter; else the account's, else SMSQ_TRANSLITERATE)
=================  =====================================================================
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from producers import keys
from producers.contract import KEY_MAX_CHARS, PLACEHOLDER_PATTERN, SendRequest, parse_request
from producers.errors import FluxError, InvalidRequestError
from producers.marketing import DEFAULT_STOP_RULE, Purpose, StopRule
from producers.segments import count_segments
from producers.transliterate import Transliteration
from worker.allmysms.flux import STATUS_TEXTS, Flux, parse_date, personalise
from worker.gateway.ids import sms_id


FLUX_NAMES = {
    "text": "MESSAGE",
    "to": "SMS",
    "sender": "TPOA",
    "send_at": "DATE",
    "campaign": "CAMPAIGN_NAME",
    "lane": "lane",
    "callback_url": "callbackUrl",
    "purpose": "purpose",
    "transliterate": "transliterate",
    "producer": "login",
    "key": "CLIMSGID",
}
"""Contract field → the name the AllMySMS client knows, for statusText."""
SEND_AHEAD_MAX_DAYS = 366
"""Latest DATE the gateway schedules, in days from now: a message is not kept in Redis for
years (``9999-12-31 23:59:59`` is answered 115)."""
_RECIPIENT_FIELD = re.compile(r"\bto\[(\d+)\](?:\.phone)?")


def gateway_key(login: str, client_key: str) -> str:
    """The smsq idempotency key of a gateway request (namespaced by producer login)."""
    return f"{keys.GATEWAY_KEY_PREFIX}{login}:{client_key}"


def flux_text(flux: Flux, name: str) -> str:
    """A top-level DATA field as stripped text (empty when absent).

    Raises:
        FluxError: 106 when it is an object or a list.
    """
    value = flux.data.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FluxError(106)
    return str(value).strip()


def check_horizon(flux: Flux, now: datetime) -> None:
    """Refuse a DATE further ahead than :data:`SEND_AHEAD_MAX_DAYS`.

    Raises:
        FluxError: 115 naming DATE and the limit.
    """
    date = flux.date.strip()
    if date and parse_date(date) - now > timedelta(days=SEND_AHEAD_MAX_DAYS):
        raise FluxError(115, f"DATE: at most {SEND_AHEAD_MAX_DAYS} days ahead")


def build_request(
    flux: Flux,
    *,
    login: str,
    scheduled: bool,
    idempotency_key: str = "",
    lane: str = "",
    callback_url: str = "",
    purpose: str = "",
    account_purpose: Purpose | None = None,
    default_region: str = "FR",
    stop: StopRule = DEFAULT_STOP_RULE,
    transliterate: str = "",
    transliteration: Transliteration = Transliteration.NONE,
    test: bool = False,
) -> SendRequest:
    """Translate a checked flux (:func:`worker.allmysms.flux.check_flux`) into a contract request.

    Raises:
        InvalidRequestError: the contract refuses it; :func:`refusal` maps it to a status.
        FluxError: 106 when CLIMSGID or TPOA is not a scalar.
    """
    text = flux.message or ""
    client_key = idempotency_key.strip()
    key_field = "Idempotency-Key"
    if not client_key:
        client_key, key_field = flux_text(flux, "CLIMSGID"), "CLIMSGID"
    if not client_key:
        client_key = uuid.uuid4().hex
    key = gateway_key(login, client_key)
    if len(key) > KEY_MAX_CHARS:
        room = KEY_MAX_CHARS - len(gateway_key(login, ""))
        raise InvalidRequestError(key_field, f"must be at most {room} characters")
    dynamic = max((int(n) for n in PLACEHOLDER_PATTERN.findall(text)), default=0)
    request: dict[str, Any] = {
        "key": key,
        "text": text,
        "to": [
            {
                "phone": entry["MOBILEPHONE"],
                "params": [entry.get(f"PARAM_{n}", "") for n in range(1, dynamic + 1)],
            }
            for entry in flux.entries
        ],
        "producer": login,
    }
    sender = flux_text(flux, "TPOA")
    if sender:
        request["sender"] = sender
    if scheduled:
        request["send_at"] = parse_date(flux.date.strip()).isoformat()
    if flux.campaign.strip():
        request["campaign"] = flux.campaign.strip()
    if lane.strip():
        request["lane"] = lane.strip()
    if callback_url.strip():
        request["callback_url"] = callback_url.strip()
    asked = purpose.strip()
    if account_purpose is not None:
        if asked and asked != account_purpose.value:
            raise InvalidRequestError(
                "purpose", f"this account may only send {account_purpose.value} messages"
            )
        asked = account_purpose.value
    if asked:
        request["purpose"] = asked
    if transliterate.strip():
        request["transliterate"] = transliterate.strip()
    if test:
        request["test"] = True
    return parse_request(
        request, default_region=default_region, stop=stop, transliteration=transliteration
    )


def refusal(error: InvalidRequestError) -> tuple[int, str]:
    """The AllMySMS status and statusText for a request the contract refused.

    110 empty MESSAGE, 111 MESSAGE too long, 114 no valid number; anything else is 106 with a
    statusText naming the AllMySMS field and the reason.
    """
    field, reason = error.field, _flux_wording(error.reason)
    if field == "text" and "must not be empty" in reason:
        return 110, STATUS_TEXTS[110]
    if field == "text" and "at most" in reason:
        return 111, f"{STATUS_TEXTS[111]} ({reason})"
    if field == "to" and reason.startswith("no valid recipient"):
        return 114, f"{STATUS_TEXTS[114]} ({reason})"
    return 106, f"{_flux_wording(FLUX_NAMES.get(field, field))}: {reason}"


def _flux_wording(text: str) -> str:
    return _RECIPIENT_FIELD.sub(lambda m: f"SMS[{m.group(1)}].MOBILEPHONE", text)


def success_reply(
    request: SendRequest, refused: Sequence[str], message_id: str, now: datetime
) -> dict[str, Any]:
    """The sendSms answer for an enqueued request, in AllMySMS's shape.

    113 when some numbers were refused (the others are sent), else 101 when deferred, else 100.
    ``campaignId`` is smsq's message id; each smsId is ``<message_id>-<n>``. ``credits`` and
    ``creditsUsed`` are left out: smsq does not know the AllMySMS balance.
    """
    status = 113 if refused else 101 if request.send_at and request.send_at > now else 100
    parts = [
        count_segments(personalise(request.text, _param_entry(r.params))).segments
        for r in request.recipients
    ]
    return {
        "status": status,
        "statusText": STATUS_TEXTS[status],
        "invalidNumbers": "|".join(refused),
        "campaignId": message_id,
        "nbContacts": str(len(request.recipients)),
        "nbSms": str(sum(parts)),
        "smsIds": [
            {"phoneNumber": r.phone, "smsId": sms_id(message_id, n)}
            for n, r in enumerate(request.recipients, start=1)
        ],
    }


def refused_phones(refused_numbers: Sequence[Mapping[str, str]]) -> list[str]:
    """The numbers of ``Enqueued.refused_numbers`` / a record's, as the client wrote them."""
    return [r["phone"] for r in refused_numbers]


def _param_entry(params: Sequence[str]) -> dict[str, str]:
    return {f"PARAM_{n}": value for n, value in enumerate(params, start=1)}
