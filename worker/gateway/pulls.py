"""The gateway's ``getPull`` (``campId``), ``getPullBySmsId`` (``smsId``) and ``getPulls``
(``limit``): replies (MO SMS) to the producer's own messages, answered from smsq's store
(``worker.store.receipts``), never asked of AllMySMS.

The shape is AllMySMS's (``docs`` §4): ``{"mos": [{"phoneNumber", "id", "campaignId",
"message", "receptionDate"}]}``, oldest first; ``id`` is the reply's smsMoId, ``campaignId`` the
campaignId the gateway's sendSms answered (smsq's message id; a split message's, never its
part's). getPull and getPullBySmsId add the message's ``cliMsgId``. getPullBySmsId answers a
``mos`` list too (AllMySMS's is documented, by one SDK only, as a single object; a person may
reply more than once): the replies of that one recipient.

getPulls returns the replies to any of the producer's gateway messages that no getPulls of
that producer has returned yet, at most ``limit`` (1 to :data:`LIMIT_MAX`, default
:data:`LIMIT_MAX`), oldest first (:mod:`worker.store.pulls`). A reply of a number erased since
(``smsq purge --phone``) or of an expired message is not returned.

Not found (another producer's message, a part's id, an unknown or malformed id) is
``{"status": 0, "statusText": "Campaign not found"}`` (or "SMS not found" for an smsId), as
getAcks answers; no reply yet is ``"mos": []``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from worker.allmysms.campaigns import MISSING_CAMP_ID, NO_SUCH_CAMPAIGN, refused
from worker.gateway.acks import MISSING_SMS_ID, NO_SUCH_SMS
from worker.gateway.endpoints import account_routes
from worker.gateway.owned import cli_msg_id, own_message, own_recipient
from worker.gateway.sendsms import Answer, answer_format
from worker.store.pulls import PullQueue


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from starlette.routing import Route

    from producers.records import MessageRecord
    from worker.gateway.context import GatewayContext
    from worker.settings import ProducerAccount

log = structlog.get_logger()

LIMIT_MAX = 1000
"""Most replies one getPulls returns (and its default, the one clients send)."""
BAD_LIMIT = f"limit must be a whole number from 1 to {LIMIT_MAX}"


def pull_routes() -> list[Route]:
    """The getPull, getPullBySmsId and getPulls routes."""
    return (
        account_routes("getPull", get_pull)
        + account_routes("getPullBySmsId", get_pull_by_sms_id)
        + account_routes("getPulls", get_pulls)
    )


def get_pull(
    context: GatewayContext, account: ProducerAccount, params: Mapping[str, str]
) -> Answer:
    """The replies to the producer's message ``campId``.

    Raises:
        RedisUnavailableError: Redis could not be reached.
    """
    fmt = answer_format(params)
    campaign = params.get("campId", "").strip()
    if not campaign:
        return Answer(refused(MISSING_CAMP_ID), fmt)
    record = own_message(context, account.login, campaign)
    if record is None:
        log.info("gateway.get_pull", producer=account.login, outcome="not_found")
        return Answer(refused(NO_SUCH_CAMPAIGN), fmt)
    mos = [mo(record, r) for r in record.replies]
    log.info(
        "gateway.get_pull",
        producer=account.login,
        message_id=record.message_id,
        outcome="found",
        mos=len(mos),
    )
    return Answer({"mos": mos, "cliMsgId": cli_msg_id(record, account.login)}, fmt)


def get_pull_by_sms_id(
    context: GatewayContext, account: ProducerAccount, params: Mapping[str, str]
) -> Answer:
    """The replies of recipient ``smsId`` (``<message id>-<n>``) of the producer's message.

    Raises:
        RedisUnavailableError: Redis could not be reached.
    """
    fmt = answer_format(params)
    sms_id = params.get("smsId", "").strip()
    if not sms_id:
        return Answer(refused(MISSING_SMS_ID), fmt)
    recipient = own_recipient(context, account.login, sms_id)
    if recipient is None:
        log.info("gateway.get_pull", producer=account.login, outcome="not_found")
        return Answer(refused(NO_SUCH_SMS), fmt)
    record = recipient.record
    mos = [mo(record, r) for r in record.replies if r.get("phone") == recipient.phone]
    log.info(
        "gateway.get_pull",
        producer=account.login,
        message_id=record.message_id,
        outcome="found",
        mos=len(mos),
    )
    return Answer({"mos": mos, "cliMsgId": cli_msg_id(record, account.login)}, fmt)


def get_pulls(
    context: GatewayContext, account: ProducerAccount, params: Mapping[str, str]
) -> Answer:
    """The replies no getPulls of this producer has returned yet, oldest first.

    Raises:
        RedisUnavailableError: Redis could not be reached.
    """
    fmt = answer_format(params)
    limit = parse_limit(params.get("limit", ""))
    if limit is None:
        log.info("gateway.get_pulls", producer=account.login, outcome="bad_limit")
        return Answer(refused(BAD_LIMIT), fmt)
    refs = PullQueue(context.producer.connection).take(account.login, limit)
    wanted = list(dict.fromkeys(ref.message_id for ref in refs))
    records = {
        r.message_id: r
        for r in context.store.get_many_by_id(list(wanted))
        if r is not None and r.request.get("producer") == account.login and not r.parent
    }
    mos = [
        mo(records[ref.message_id], reply)
        for ref in refs
        for reply in _replies(records.get(ref.message_id), ref.sms_mo_id)
    ]
    log.info(
        "gateway.get_pulls",
        producer=account.login,
        outcome="found",
        taken=len(refs),
        mos=len(mos),
    )
    return Answer({"mos": mos}, fmt)


def parse_limit(raw: str) -> int | None:
    """``limit`` as a whole number from 1 to :data:`LIMIT_MAX` (blank: the maximum); None when
    it is anything else."""
    text = raw.strip()
    if not text:
        return LIMIT_MAX
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        return None
    value = int(text)
    return value if 1 <= value <= LIMIT_MAX else None


def _replies(record: MessageRecord | None, sms_mo_id: str) -> Iterable[dict[str, Any]]:
    if record is None:
        return ()
    return [r for r in record.replies if r.get("sms_mo_id") == sms_mo_id][:1]


def mo(record: MessageRecord, reply: Mapping[str, Any]) -> dict[str, str]:
    """One reply in AllMySMS's shape."""
    return {
        "phoneNumber": str(reply.get("phone", "")),
        "id": str(reply.get("sms_mo_id", "")),
        "campaignId": record.message_id,
        "message": str(reply.get("message", "")),
        "receptionDate": str(reply.get("reception_date", "")),
    }
