"""The gateway's simulateCampaign: a producer's flux is checked and translated exactly as its
sendSms does, then its cost is asked of AllMySMS's simulateCampaign with smsq's own credentials
(``ALLMYSMS_*``), part by part as workers would send it. Nothing is enqueued, nothing is sent.

The answer has AllMySMS's simulate shape (``status``, ``statusText``, ``invalidNumbers``,
``nbCredits``, ``nbContacts``, ``nbSms``, counts as JSON ints). A gateway without AllMySMS
credentials answers HTTP 501; AllMySMS unreachable or answering unreadably, HTTP 502; AllMySMS
refusing smsq's own credentials (102) is also a 502, never a 102 the producer would take for
its own login failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from starlette.routing import Route

from producers.errors import FluxError, InvalidRequestError, ProviderError
from producers.simulation import TEXT_113, Simulation, combine
from worker.allmysms.client import AllMySmsClient
from worker.allmysms.flux import error_reply
from worker.allmysms.payload import build_fluxes
from worker.gateway.context import GatewayContext
from worker.gateway.endpoints import account_routes
from worker.gateway.sendsms import (
    Answer,
    _flux_error_text,
    answer_format,
    checked_request,
    http_error,
)
from worker.gateway.translate import refusal


if TYPE_CHECKING:
    from worker.settings import ProducerAccount, Settings

log = structlog.get_logger()

NO_CREDENTIALS_TEXT = (
    "simulateCampaign is not available: this gateway has no AllMySMS credentials "
    "(ALLMYSMS_LOGIN, ALLMYSMS_API_KEY); nothing was sent"
)


class Simulator:
    """Asks AllMySMS's simulateCampaign with smsq's credentials, one client per request (a
    simulation is rare; nothing stays open between them)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def available(self) -> bool:
        """Whether smsq has AllMySMS credentials to ask with."""
        return bool(self._settings.login and self._settings.api_key.reveal())

    def simulate(self, fluxes: list[dict[str, Any]]) -> list[Simulation]:
        """One simulateCampaign per flux, in order.

        Raises:
            ProviderError: AllMySMS was not reached or answered unreadably (NotSentError,
                OutcomeUnknownError); nothing was sent either way.
        """
        client = AllMySmsClient.from_settings(self._settings)
        try:
            return [client.simulate(flux) for flux in fluxes]
        finally:
            client.close()


def simulate_routes(settings: Settings, simulator: Simulator | None = None) -> list[Route]:
    """The simulateCampaign routes (sendSms's sign-in, limits and paths, through
    :func:`worker.gateway.endpoints.account_routes`); ``simulator`` defaults to one from
    ``settings``."""
    chosen = simulator or Simulator(settings)

    def handler(
        context: GatewayContext, account: ProducerAccount, params: Mapping[str, str]
    ) -> Answer:
        return simulate(context, chosen, account, params, datetime.now(UTC))

    return account_routes("simulateCampaign", handler)


def simulate(
    context: GatewayContext,
    simulator: Simulator,
    account: ProducerAccount,
    params: Mapping[str, str],
    now: datetime,
) -> Answer:
    """Check the flux of a signed-in, rate-counted request as sendSms does, then ask AllMySMS
    the cost."""
    fmt = answer_format(params)
    bound = log.bind(producer=account.login)
    try:
        request = checked_request(context, account, params, {}, now)
    except FluxError as exc:
        bound.info("gateway.simulate_refused", status=exc.status)
        return Answer(error_reply(exc.status, _flux_error_text(exc)), fmt)
    except InvalidRequestError as exc:
        status, text = refusal(exc)
        bound.info("gateway.simulate_refused", status=status, field=exc.field)
        return Answer(error_reply(status, text), fmt)
    if not simulator.available:
        bound.warning("gateway.simulate_unavailable")
        return http_error(501, fmt, NO_CREDENTIALS_TEXT)
    fluxes = build_fluxes(request, now=now, chunk=context.settings.producer.chunk_recipients)
    try:
        whole = combine(simulator.simulate(fluxes))
    except ProviderError as exc:
        bound.warning("gateway.simulate_failed", error=type(exc).__name__)
        return http_error(
            502, fmt, f"AllMySMS simulateCampaign could not be asked: {exc}; nothing was sent"
        )
    if whole.status == 102:
        bound.error("gateway.simulate_failed", provider_status=102)
        return http_error(
            502, fmt, "AllMySMS refused smsq's own credentials (status 102); nothing was sent"
        )
    refused = [r.phone for r in request.refused_numbers]
    reply = _reply(whole, refused)
    bound.info(
        "gateway.simulated",
        status=reply["status"],
        recipients=len(request.recipients),
        refused=len(refused),
        parts=len(fluxes),
        nb_sms=whole.nb_sms,
        nb_credits=whole.nb_credits,
    )
    return Answer(reply, fmt)


def _reply(whole: Simulation, refused: list[str]) -> dict[str, Any]:
    """AllMySMS's simulate body; numbers the contract refused make a sendable answer 113, as the
    gateway's sendSms answers, and are listed after AllMySMS's own."""
    status, text = whole.status, whole.status_text
    if refused and whole.would_send and status != 113:
        status, text = 113, TEXT_113
    return {
        "status": status,
        "statusText": text,
        "invalidNumbers": "|".join([*whole.invalid_numbers, *refused]),
        "nbCredits": whole.nb_credits,
        "nbContacts": whole.nb_contacts,
        "nbSms": whole.nb_sms,
    }
