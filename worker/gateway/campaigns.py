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
from starlette.routing import Route

from producers.durability import Barrier
from producers.states import State
from worker.allmysms.campaigns import DELETED, MISSING_CAMP_ID, NO_SUCH_CAMPAIGN, refused
from worker.gateway.endpoints import account_routes
from worker.gateway.owned import own_message
from worker.gateway.sendsms import Answer, answer_format
from worker.store.cancel import Canceller
from worker.store.ledger import Ledger


if TYPE_CHECKING:
    from collections.abc import Mapping

    from redis import Redis

    from worker.allmysms.client import AllMySmsClient
    from worker.gateway.context import GatewayContext
    from worker.settings import ProducerAccount, Settings
    from worker.store.deadletters import Decision

log = structlog.get_logger()

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


def handle_delete(
    context: GatewayContext,
    desk: CampaignDesk,
    account: ProducerAccount,
    params: Mapping[str, str],
) -> Answer:
    """Find the signed-in producer's own message, cancel it, answer like AllMySMS."""
    fmt = answer_format(params)
    bound = log.bind(producer=account.login)
    campaign = params.get("campId", "").strip()
    if not campaign:
        return Answer(refused(MISSING_CAMP_ID), fmt)
    record = own_message(context, account.login, campaign)
    if record is None:
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


def routes(settings: Settings, connection: Redis) -> list[Route]:
    """The deleteCampaign routes (sendSms's sign-in, limits and paths, through
    :func:`worker.gateway.endpoints.account_routes`)."""
    desk = CampaignDesk(settings, connection)

    def handler(
        context: GatewayContext, account: ProducerAccount, params: Mapping[str, str]
    ) -> Answer:
        return handle_delete(context, desk, account, params)

    return account_routes("deleteCampaign", handler)
