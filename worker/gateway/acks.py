"""The gateway's ``getAcks`` (``campId``) and ``getAckBySmsId`` (``smsId``): delivery receipts
of the producer's own messages, answered from smsq's store (``worker.store.receipts``), never
asked of AllMySMS.

The shape is AllMySMS's (``docs`` §4): ``{"acks": [{"phoneNumber", "statut", "comment",
"receptionDate"}], "cliMsgId"}``, one ack per recipient that has a receipt, in the order of the
request (a split message: its parts' receipts together). ``statut`` is AllMySMS's spelling (the
webhook's ``status``: "1" delivered, "2" not delivered, "3" transmitted, "4" message rejected,
"5" SMS rejected), as a string like the webhook's; ``comment`` is the receipt's
``statusText``. A recipient without a receipt yet is not listed (smsq cannot say it reached the
operator: the message may still be queued), so a message not sent yet answers ``"acks": []``.
``getAckBySmsId`` answers the one ack object itself.

Not found (another producer's message, a part's id, an unknown or malformed id) is
``{"status": 0, "statusText": "Campaign not found"}`` as deleteCampaign answers, or "SMS not
found" for an smsId; a known smsId without a receipt yet is ``{"status": 0, "statusText":
"No acknowledgement yet for this SMS"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from worker.allmysms.campaigns import MISSING_CAMP_ID, NO_SUCH_CAMPAIGN, refused
from worker.gateway.endpoints import account_routes
from worker.gateway.owned import cli_msg_id, own_message, own_recipient, recipient_phones
from worker.gateway.sendsms import Answer, answer_format


if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.routing import Route

    from worker.gateway.context import GatewayContext
    from worker.settings import ProducerAccount

log = structlog.get_logger()

NO_SUCH_SMS = "SMS not found"
MISSING_SMS_ID = "smsId is required"
NO_ACK_YET = "No acknowledgement yet for this SMS"


def ack_routes() -> list[Route]:
    """The getAcks and getAckBySmsId routes."""
    return account_routes("getAcks", get_acks) + account_routes("getAckBySmsId", get_ack)


def get_acks(
    context: GatewayContext, account: ProducerAccount, params: Mapping[str, str]
) -> Answer:
    """The receipts of the producer's message ``campId``.

    Raises:
        RedisUnavailableError: Redis could not be reached.
    """
    fmt = answer_format(params)
    campaign = params.get("campId", "").strip()
    if not campaign:
        return Answer(refused(MISSING_CAMP_ID), fmt)
    record = own_message(context, account.login, campaign)
    if record is None:
        log.info("gateway.get_acks", producer=account.login, outcome="not_found")
        return Answer(refused(NO_SUCH_CAMPAIGN), fmt)
    acks = [ack(p, record.receipts.get(p)) for p in recipient_phones(record)]
    acks = [a for a in acks if a]
    log.info(
        "gateway.get_acks",
        producer=account.login,
        message_id=record.message_id,
        outcome="found",
        acks=len(acks),
    )
    return Answer({"acks": acks, "cliMsgId": cli_msg_id(record, account.login)}, fmt)


def get_ack(context: GatewayContext, account: ProducerAccount, params: Mapping[str, str]) -> Answer:
    """The receipt of recipient ``smsId`` (``<message id>-<n>``) of the producer's message.

    Raises:
        RedisUnavailableError: Redis could not be reached.
    """
    fmt = answer_format(params)
    sms_id = params.get("smsId", "").strip()
    if not sms_id:
        return Answer(refused(MISSING_SMS_ID), fmt)
    recipient = own_recipient(context, account.login, sms_id)
    if recipient is None:
        log.info("gateway.get_ack", producer=account.login, outcome="not_found")
        return Answer(refused(NO_SUCH_SMS), fmt)
    receipt = recipient.record.receipts.get(recipient.phone)
    log.info(
        "gateway.get_ack",
        producer=account.login,
        message_id=recipient.record.message_id,
        outcome="found" if receipt else "no_receipt",
    )
    if not receipt:
        return Answer(refused(NO_ACK_YET), fmt)
    return Answer(ack(recipient.phone, receipt), fmt)


def ack(phone: str, receipt: Mapping[str, Any] | None) -> dict[str, str]:
    """One ack in AllMySMS's shape; ``{}`` when there is no receipt."""
    if not receipt:
        return {}
    return {
        "phoneNumber": phone,
        "statut": str(receipt.get("status", "")),
        "comment": str(receipt.get("status_text", "")),
        "receptionDate": str(receipt.get("reception_date", "")),
    }
