"""``producers.estimate()``: what a send request would cost, asked of the smsq gateway's
simulateCampaign. The producer holds only its gateway login and key, never the AllMySMS apiKey;
nothing is enqueued and nothing is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producers.contract import SendRequest, parse_request
from producers.errors import ConfigError, NotSentError, OutcomeUnknownError, shown
from producers.marketing import Purpose
from producers.payload import build_flux
from producers.simulation import TEXT_113, Simulation, parse_simulation


if TYPE_CHECKING:
    import httpx

TIMEOUT_S = 10.0
"""How long the gateway may take: it asks AllMySMS once per part of the request."""


def estimate(
    request: Mapping[str, Any] | SendRequest,
    *,
    gateway_url: str,
    login: str,
    api_key: str,
    default_region: str = "FR",
    timeout_s: float = TIMEOUT_S,
    transport: httpx.BaseTransport | None = None,
) -> Simulation:
    """Ask the gateway what sending ``request`` would cost (its simulateCampaign).

    The request is checked here first, as :func:`producers.enqueue` checks it (its key is not
    needed by the gateway and is not sent); the gateway checks it again as its sendSms does.

    Args:
        request: a contract request (``key``, ``to``, ``text``...) or a parsed one.
        gateway_url: the gateway's base URL, ``http://HOST:PORT/http/9.0``.
        login: the producer's gateway login (``SMSQ_PRODUCERS``).
        api_key: the producer's gateway key (never the AllMySMS one).
        default_region: how to read national numbers (``SMSQ_DEFAULT_COUNTRY``).
        timeout_s: connect, read and write timeout.
        transport: an httpx transport (tests).

    Returns:
        The cost: ``nb_sms``, ``nb_credits``, ``nb_contacts``, ``invalid_numbers``, ``status``
        (100, 101, 113, or the refusal AllMySMS or the gateway would answer), ``would_send``.

    Raises:
        InvalidRequestError: the request breaks the contract; nothing was asked.
        ConfigError: the gateway refused ``login``/``api_key`` (status 102).
        NotSentError: the gateway could not be reached.
        OutcomeUnknownError: the gateway answered an HTTP error (its text quoted: AllMySMS
            unreachable, no AllMySMS credentials, rate limited...) or an unreadable body.
    """
    import httpx  # here, not at the top: importing producers loads no httpx

    parsed = (
        request
        if isinstance(request, SendRequest)
        else parse_request(request, default_region=default_region)
    )
    form = {
        "login": login,
        "apiKey": api_key,
        "smsData": json.dumps(build_flux(parsed, now=datetime.now(UTC)), ensure_ascii=False),
        "returnformat": "json",
    }
    if parsed.lane.value != "default":
        form["lane"] = parsed.lane.value
    if parsed.callback_url:
        form["callbackUrl"] = parsed.callback_url
    if parsed.purpose is not Purpose.TRANSACTIONAL:
        form["purpose"] = parsed.purpose.value
    url = f"{gateway_url.rstrip('/')}/simulateCampaign/"
    try:
        with httpx.Client(timeout=timeout_s, transport=transport) as client:
            response = client.post(url, data=form)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise NotSentError(f"{type(exc).__name__}: the smsq gateway was not reached") from exc
    except httpx.TransportError as exc:
        raise OutcomeUnknownError(
            f"{type(exc).__name__} during the gateway's simulateCampaign"
        ) from exc
    if response.status_code != 200:
        raise OutcomeUnknownError(
            f"the smsq gateway answered HTTP {response.status_code}: "
            f"{_status_text(response.content)}",
            http_status=response.status_code,
        )
    simulation = parse_simulation(200, response.content)
    if simulation.status == 102:
        raise ConfigError("api_key", "the smsq gateway refused this login and api_key (102)")
    dropped = [r.phone for r in parsed.refused_numbers]
    if not dropped:
        return simulation
    # Numbers the contract dropped here never reached the gateway: listed last, as written,
    # and a sendable answer becomes 113 (some numbers invalid), as the gateway's sendSms says.
    status, text = simulation.status, simulation.status_text
    if simulation.would_send and status != 113:
        status, text = 113, TEXT_113
    return replace(
        simulation,
        status=status,
        status_text=text,
        invalid_numbers=[*simulation.invalid_numbers, *dropped],
    )


def _status_text(body: bytes) -> str:
    """The ``statusText`` of a gateway error answer, or a word when there is none."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return "no readable answer"
    text = data.get("statusText") if isinstance(data, dict) else None
    return shown(text, max_chars=500) if isinstance(text, str) and text else "no statusText"
