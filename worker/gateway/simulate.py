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
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from producers.errors import FluxError, InvalidRequestError, ProviderError, RedisUnavailableError
from producers.simulation import TEXT_113, Simulation, combine
from worker.allmysms.client import AllMySmsClient
from worker.allmysms.flux import error_reply
from worker.allmysms.payload import build_fluxes
from worker.gateway.context import GatewayContext, context_of
from worker.gateway.sendsms import (
    RETRY_AFTER_S,
    Answer,
    _flux_error_text,
    answer_format,
    body_params,
    checked_request,
    client_address,
    http_error,
    query_params,
    read_body,
    sign_in,
    to_response,
    too_many,
)
from worker.gateway.translate import refusal


if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from worker.settings import Settings

log = structlog.get_logger()

SIMULATE_PATHS = (
    "/http/9.0/simulateCampaign/",
    "/http/9.0/simulateCampaign",
    "/simulateCampaign/",
    "/simulateCampaign",
)
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
    """The simulateCampaign routes; ``simulator`` defaults to one from ``settings``."""
    chosen = simulator or Simulator(settings)

    async def endpoint(request: Request) -> Response:
        return await simulate_campaign(request, chosen)

    return [Route(path, endpoint, methods=["GET", "POST"]) for path in SIMULATE_PATHS]


async def simulate_campaign(request: Request, simulator: Simulator) -> Response:
    """GET or POST ``/http/9.0/simulateCampaign/``: the parameters sendSms takes, the cost."""
    context = context_of(request)
    query = query_params(request)
    fmt = answer_format(query)
    if request.method not in ("GET", "POST"):  # starlette routes HEAD with GET
        return to_response(http_error(405, fmt, headers={"Allow": "GET, POST"}))
    limit = context.settings.gateway_max_body_bytes
    body = await read_body(request, limit)
    if body is None:
        return to_response(http_error(413, fmt, f"Request body larger than {limit} bytes"))
    params = dict(query)
    if request.method == "POST":
        fields = await body_params(request.headers, body, limit)
        if fields is None:
            return to_response(http_error(400, fmt))
        params.update(fields)
    try:
        answer = await run_in_threadpool(
            simulate, context, simulator, params, datetime.now(UTC), client_address(request)
        )
    except (RedisUnavailableError, RedisError) as exc:
        log.warning("gateway.redis_unavailable", error=type(exc).__name__)
        answer = http_error(503, answer_format(params), headers={"Retry-After": str(RETRY_AFTER_S)})
    except Exception as exc:  # answered in the client's format; the app's handler is a backstop
        log.error("gateway.request_failed", error=type(exc).__name__, exc_info=exc)
        answer = http_error(500, answer_format(params))
    return to_response(answer)


def simulate(
    context: GatewayContext,
    simulator: Simulator,
    params: Mapping[str, str],
    now: datetime,
    client: str = "unknown",
) -> Answer:
    """Sign in, rate-limit and check the flux as sendSms does, then ask AllMySMS the cost.

    Raises:
        RedisUnavailableError: Redis could not be reached for the login and rate checks.
    """
    fmt = answer_format(params)
    account = sign_in(context, params, client, fmt)
    if isinstance(account, Answer):
        return account
    bound = log.bind(producer=account.login)
    over = context.limits.take_request(account.login)
    if over is not None:
        bound.warning("gateway.rate_limited", client=client, retry_after_s=over.retry_after_s)
        return too_many(over, fmt)
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
