"""The calling producer's own messages, found by the ids the gateway's sendSms answered:
``campaignId`` (smsq's message id) and ``smsIds[].smsId`` (``<message id>-<n>``).

Scoped to the producer: a message another account sent, a part of a split message, an id smsq
does not know or one that is no id of smsq's at all are all "not found", so one producer
cannot even learn that another's message exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from producers.keys import MESSAGE_ID_PATTERN
from worker.gateway.ids import parse_sms_id
from worker.gateway.translate import gateway_key


if TYPE_CHECKING:
    from producers.records import MessageRecord
    from worker.gateway.context import GatewayContext

ID_MAX_CHARS = 200
"""A longer campId or smsId is no id of smsq's: not found without a lookup."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient of an own message: its 1-based position and the phone it was sent to."""

    record: MessageRecord
    position: int
    phone: str


def own_message(context: GatewayContext, login: str, campaign: str) -> MessageRecord | None:
    """The record (parts folded in) of message ``campaign`` when ``login`` sent it, else None.

    Raises:
        RedisUnavailableError: Redis could not be reached.
    """
    campaign = campaign.strip()
    if len(campaign) > ID_MAX_CHARS or not MESSAGE_ID_PATTERN.fullmatch(campaign):
        return None
    record = context.store.get_by_id(campaign)
    if record is None or record.parent or record.request.get("producer") != login:
        return None
    return record


def own_recipient(context: GatewayContext, login: str, sms_id: str) -> Recipient | None:
    """Recipient ``n`` of ``<message id>-<n>`` when ``login`` sent that message, else None.

    Raises:
        RedisUnavailableError: Redis could not be reached.
    """
    parsed = parse_sms_id(sms_id) if len(sms_id) <= ID_MAX_CHARS else None
    if parsed is None or parsed[1] is None:
        return None
    record = own_message(context, login, parsed[0])
    to = record.request.get("to", []) if record is not None else []
    if record is None or not 1 <= parsed[1] <= len(to):
        return None
    return Recipient(record, parsed[1], str(to[parsed[1] - 1].get("phone", "")))


def recipient_phones(record: MessageRecord) -> list[str]:
    """The phones of a message's recipients, in request order, each once."""
    phones = [str(r.get("phone", "")) for r in record.request.get("to", [])]
    return list(dict.fromkeys(p for p in phones if p))


def cli_msg_id(record: MessageRecord, login: str) -> str:
    """The ``CLIMSGID`` (or ``Idempotency-Key``) the message was sent with, as AllMySMS echoes
    it in ``cliMsgId``; a message sent with neither has the one the gateway made up."""
    prefix = gateway_key(login, "")
    return record.key[len(prefix) :] if record.key.startswith(prefix) else ""
