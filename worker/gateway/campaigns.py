"""The gateway's ``deleteCampaign``: an AllMySMS client cancels what it sent through smsq.

The ``campId`` is the ``campaignId`` the gateway's sendSms answered, which is smsq's message id
(``worker.gateway.translate``). Scoped to the calling producer: a campaign of another account,
a part's id, or an id smsq does not know all get the same "Campaign not found" answer, so one
producer cannot even learn that another's campaign exists. Then, as ``smsq cancel`` does
(``worker.store.cancel``): a ``queued`` message ends ``cancelled`` and the answer is
``{"status":"OK"}``; a ``scheduled`` one is first deleted at AllMySMS (deleteCampaign with the
provider's own campaignId, smsq's credentials) and OK comes only after the provider's OK; a
split message answers OK only once every part is cancelled. Anything else (sending, sent, a
provider refusal or outage) is an error answer in the sendSms error shape, ``status`` 0 and a
``statusText`` saying why. Who and why are recorded (``producer <login>``, in the message's
history and the audit stream).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from producers.durability import Barrier
from producers.errors import RedisUnavailableError
from producers.states import State
from worker.allmysms.campaigns import DELETED, MISSING_CAMP_ID, NO_SUCH_CAMPAIGN, refused
from worker.gateway.context import context_of
from worker.gateway.sendsms import (
    RETRY_AFTER_S,
    Answer,
    answer_format,
    body_params,
    client_address,
    http_error,
    query_params,
    read_body,
    sign_in,
    to_response,
    too_many,
)
from worker.store.cancel import Canceller
from worker.store.ledger import Ledger


if TYPE_CHECKING:
    from collections.abc import Mapping

    from redis import Redis
    from starlette.requests import Request
    from starlette.responses import Response

    from worker.allmysms.client import AllMySmsClient
    from worker.gateway.context import GatewayContext
    from worker.settings import Settings
    from worker.store.deadletters import Decision

log = structlog.get_logger()

DELETE_PATHS = (
    "/http/9.0/deleteCampaign/",
    "/http/9.0/deleteCampaign",
    "/deleteCampaign/",
    "/deleteCampaign",
)
CAMP_ID_MAX_CHARS = 200
"""A longer campId is no message id of smsq's: "Campaign not found" without a lookup."""
WHY = "deleteCampaign through the gateway"


class CampaignDesk:
    """Cancels for the deleteCampaign route; an AllMySMS client is made only for a scheduled
    message, for that request, and closed after it (none without ``ALLMYSMS_*``)."""

    def __init__(self, settings: Settings, connection: Redis) -> None:
        self._settings = settings
        self._redis = connection
        self._ledger = Ledger(
            connection,
            ttl_s=settings.producer.outcome_ttl_s,
            worker_name="gateway",
            barrier=Barrier.from_settings(settings.producer),
        )
        self._configured = bool(settings.login and settings.api_key.reveal())

    def cancel(self, key: str, *, actor: str) -> Decision:
        """Cancel one message (see :class:`worker.store.cancel.Canceller`)."""
        made: list[AllMySmsClient] = []

        def provider() -> AllMySmsClient:
            from worker.allmysms.client import AllMySmsClient

            made.append(AllMySmsClient.from_settings(self._settings))
            return made[0]

        canceller = Canceller(
            self._redis, self._ledger, deleter=provider if self._configured else None
        )
        try:
            return canceller.cancel(key, actor=actor, why=WHY)
        finally:
            for client in made:
                client.close()


async def delete_campaign(request: Request) -> Response:
    """GET or POST ``/http/9.0/deleteCampaign/`` with ``login``, ``apiKey``, ``campId``."""
    context = context_of(request)
    query = query_params(request)
    fmt = answer_format(query)
    if request.method not in ("GET", "POST"):
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
    desk: CampaignDesk = request.app.state.campaigns
    try:
        answer = await run_in_threadpool(
            handle_delete, context, desk, params, client_address(request)
        )
    except (RedisUnavailableError, RedisError) as exc:
        log.warning("gateway.redis_unavailable", error=type(exc).__name__)
        answer = http_error(503, answer_format(params), headers={"Retry-After": str(RETRY_AFTER_S)})
    return to_response(answer)


def handle_delete(
    context: GatewayContext, desk: CampaignDesk, params: Mapping[str, str], client: str
) -> Answer:
    """Sign in, find the producer's own message, cancel it, answer like AllMySMS."""
    fmt = answer_format(params)
    account = sign_in(context, params, client, fmt)
    if isinstance(account, Answer):
        return account
    bound = log.bind(producer=account.login)
    over = context.limits.take_request(account.login)
    if over is not None:
        bound.warning("gateway.rate_limited", client=client, retry_after_s=over.retry_after_s)
        return too_many(over, fmt)
    campaign = params.get("campId", "").strip()
    if not campaign:
        return Answer(refused(MISSING_CAMP_ID), fmt)
    record = context.store.get_by_id(campaign) if len(campaign) <= CAMP_ID_MAX_CHARS else None
    if record is None or record.parent or record.request.get("producer") != account.login:
        bound.info("gateway.delete_campaign", outcome="not_found")
        return Answer(refused(NO_SUCH_CAMPAIGN), fmt)
    decision = desk.cancel(record.key, actor=f"producer {account.login}")
    after = context.store.get_by_id(campaign)
    done = after is not None and after.state is State.CANCELLED
    bound.info(
        "gateway.delete_campaign",
        message_id=record.message_id,
        outcome="cancelled" if done else "refused",
        state=after.state.value if after else "gone",
    )
    if done and decision.action == "cancelled":
        return Answer(dict(DELETED), fmt)
    return Answer(refused(_status_text(decision.detail)), fmt)


def _status_text(detail: str) -> str:
    """A cancel's refusal as a statusText: "Message is sent: ...", or the detail as it is."""
    return f"Message {detail}" if detail.startswith("is ") else detail


def routes(settings: Settings, connection: Redis) -> tuple[list[Route], CampaignDesk]:
    """The deleteCampaign routes and the desk the app keeps in ``app.state.campaigns``."""
    return (
        [Route(path, delete_campaign, methods=["GET", "POST"]) for path in DELETE_PATHS],
        CampaignDesk(settings, connection),
    )
