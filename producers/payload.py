"""Build the AllMySMS sendSms flux (``smsData``) from a validated request. Pure functions.

Workers send it to AllMySMS, producers post it to the gateway's simulateCampaign.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from producers.contract import SendRequest


PROVIDER_TIMEZONE = ZoneInfo("Europe/Paris")
"""AllMySMS reads DATE as French local time."""
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def build_flux(
    request: SendRequest, *, now: datetime, client_id: str | None = None
) -> dict[str, Any]:
    """The ``{"DATA": {...}}`` flux; absent fields are omitted, never sent as null.

    A ``send_at`` that has already passed is dropped, so the message goes out now.
    ``client_id`` goes out as ``CLIMSGID``: smsq's message id (a part's own id for a split
    message), whatever id a gateway client sent, so AllMySMS's echo (``cliMsgId`` in getAcks,
    getPull and perhaps its webhooks) names the smsq message an answer is about. Every worker
    send passes it; a flux built for anything else (a cost estimate) may leave it out.
    """
    data: dict[str, Any] = {"MESSAGE": request.text}
    if client_id:
        data["CLIMSGID"] = client_id
    if request.sender:
        data["TPOA"] = request.sender
    if request.dynamic:
        data["DYNAMIC"] = str(request.dynamic)
    if request.send_at and request.send_at > now:
        data["DATE"] = request.send_at.astimezone(PROVIDER_TIMEZONE).strftime(DATE_FORMAT)
    if request.campaign:
        data["CAMPAIGN_NAME"] = request.campaign
    data["SMS"] = [_sms(r.phone, r.params[: request.dynamic]) for r in request.recipients]
    return {"DATA": data}


def build_fluxes(request: SendRequest, *, now: datetime, chunk: int) -> list[dict[str, Any]]:
    """The fluxes workers send for ``request``: one, or one per part of ``chunk`` recipients
    (``SMSQ_CHUNK_RECIPIENTS``), in recipient order."""
    recipients = request.recipients
    if len(recipients) <= chunk:
        return [build_flux(request, now=now)]
    return [
        build_flux(replace(request, recipients=recipients[n : n + chunk]), now=now)
        for n in range(0, len(recipients), chunk)
    ]


def _sms(phone: str, params: tuple[str, ...]) -> dict[str, str]:
    entry = {"MOBILEPHONE": phone}
    for index, value in enumerate(params, start=1):
        entry[f"PARAM_{index}"] = value
    return entry
