"""Delivery receipts and replies from AllMySMS: validation, and the store side (one Lua script
each).

A receipt finds its message through the smsId index the ledger writes when a message finishes
(``smsq:smsid:<smsId>`` → message id and phone). Applying one is order-safe and idempotent:

* a final status (1 delivered, 2 not delivered, 4 message rejected, 5 SMS rejected) is never
  overwritten: neither by a late 3 (transmitted), nor by a different final status (the first
  final one is kept, the later one is counted ``receipts_stale``);
* the same status again changes nothing (counted ``receipts_duplicate``);
* an smsId smsq does not know (another system's, expired, purged) is ignored and counted
  ``receipts_unknown``.

An applied receipt updates ``smsq:receipts:<message id>`` (smsId → receipt), appends a
``receipt`` entry to the message's history, counts ``receipt_status:<n>`` and, when the request
had a callback_url, adds a ``message.receipt`` callback event, all in the same script
(``worker/store/lua/receipts_apply.lua``).

Replies (MO SMS) are stored per message in ``smsq:replies:<message id>`` (smsMoId → reply),
once per smsMoId; a new one to a message with a callback_url adds a ``message.reply`` event
(with the text: the producer asked for the conversation) in the same script
(``worker/store/lua/receipts_store_reply.lua``), which also queues a reply to a gateway
message for its producer's getPulls (:mod:`worker.store.pulls`). Their text is the
person's own words: it is stored and called back, never logged. Neither
holds a phone number: the record maps smsIds to phones through ``sms_ids``, so ``smsq purge``
(which drops the person from ``sms_ids``) unlinks them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from producers import keys
from producers.errors import WebhookParamError
from producers.records import utc_now_iso
from producers.store import decoded
from worker.store import lua
from worker.store.pulls import HOOK_VALUES


if TYPE_CHECKING:
    from redis import Redis

STATUS_OUTCOMES = {
    1: "delivered",
    2: "not_delivered",
    3: "transmitted",
    4: "message_rejected",
    5: "sms_rejected",
}
"""AllMySMS acknowledgement statuses, as smsq names them."""
FINAL_STATUSES = frozenset({1, 2, 4, 5})
"""Receipt statuses that end a recipient's delivery; 3 (transmitted to the operator) does not."""
RECEPTION_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
"""AllMySMS's ``receptionDate``: ``YYYY-MM-DD HH:MM:SS``."""
ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,100}")
"""An smsId / smsMoId / campaignId as smsq accepts it."""
PHONE_PATTERN = re.compile(r"\+?[0-9]{6,20}")
STATUS_TEXT_MAX_CHARS = 255
REPLY_MAX_CHARS = 2000
"""Longest reply text stored (a long concatenated MO SMS fits)."""
RECEIPT_PARAMS = ("smsId", "status", "statusText", "phoneNumber", "receptionDate", "campaignId")
REPLY_PARAMS = ("smsMoId", "message", "smsId", "phoneNumber", "receptionDate", "campaignId")
RECEIPT_VALUES = {
    "FINAL_STATUSES_JSON": json.dumps({str(s): True for s in sorted(FINAL_STATUSES)}),
    "STATUS_OUTCOMES_JSON": json.dumps({str(k): v for k, v in sorted(STATUS_OUTCOMES.items())}),
}
"""The placeholders ``receipts_apply.lua`` takes from here: final statuses and status names."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt as AllMySMS sends it, validated."""

    sms_id: str
    status: int
    status_text: str = ""
    phone: str = ""
    """As AllMySMS gave it; the stored receipt uses the phone smsq sent to (from the index)."""
    reception_date: str = ""
    campaign_id: str = ""
    cli_msg_id: str = ""
    """``cliMsgId``: the CLIMSGID smsq sent (its message id), when the webhook carries it."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply (MO SMS) to a message, validated."""

    sms_mo_id: str
    text: str
    sms_id: str = ""
    phone: str = ""
    reception_date: str = ""
    campaign_id: str = ""
    cli_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class Applied:
    """What the store did with a receipt or a reply."""

    outcome: str
    """``applied`` / ``stored``, ``duplicate``, ``stale`` (receipt after a final one) or
    ``unknown`` (smsId not ours)."""
    message_id: str | None = None
    phone: str | None = None
    status: int | None = None
    """For receipts: the status now stored for the recipient."""


def parse_receipt(params: Mapping[str, str]) -> Receipt:
    """Validate receipt parameters (``smsId`` and ``status`` required).

    Raises:
        WebhookParamError: names the first bad parameter.
    """
    status = params.get("status", "").strip()
    if not status:
        raise WebhookParamError("status", "is required")
    if status not in ("1", "2", "3", "4", "5"):
        raise WebhookParamError("status", "must be 1, 2, 3, 4 or 5")
    status_text = params.get("statusText", "")
    if len(status_text) > STATUS_TEXT_MAX_CHARS:
        raise WebhookParamError("statusText", f"must be at most {STATUS_TEXT_MAX_CHARS} characters")
    return Receipt(
        sms_id=_id(params, "smsId", required=True),
        status=int(status),
        status_text=status_text,
        phone=_phone(params),
        reception_date=_reception_date(params),
        campaign_id=_id(params, "campaignId", required=False),
        cli_msg_id=cli_msg_id(params),
    )


def parse_reply(params: Mapping[str, str]) -> Reply:
    """Validate reply parameters (``smsMoId`` and ``message`` required; without ``smsId`` the
    reply cannot be tied to a message and is counted unknown).

    Raises:
        WebhookParamError: names the first bad parameter.
    """
    sms_mo_id = _id(params, "smsMoId", required=True)
    if "message" not in params:
        raise WebhookParamError("message", "is required")
    text = params["message"]
    if len(text) > REPLY_MAX_CHARS:
        raise WebhookParamError("message", f"must be at most {REPLY_MAX_CHARS} characters")
    return Reply(
        sms_mo_id=sms_mo_id,
        text=text,
        sms_id=_id(params, "smsId", required=False),
        phone=_phone(params),
        reception_date=_reception_date(params),
        campaign_id=_id(params, "campaignId", required=False),
        cli_msg_id=cli_msg_id(params),
    )


def cli_msg_id(params: Mapping[str, str]) -> str:
    """``cliMsgId`` (or ``climsgid``) when it is one of smsq's message ids, else ``""``.

    Whether AllMySMS's webhooks carry it is unknown; an id smsq did not write (a gateway
    client's own, garbage) is ignored rather than refused, so the receipt still counts.
    """
    value = (params.get("cliMsgId") or params.get("climsgid") or "").strip()
    return value if keys.MESSAGE_ID_PATTERN.fullmatch(value) else ""


def _id(params: Mapping[str, str], name: str, *, required: bool) -> str:
    value = params.get(name, "").strip()
    if not value:
        if required:
            raise WebhookParamError(name, "is required")
        return ""
    if not ID_PATTERN.fullmatch(value):
        raise WebhookParamError(name, "must be 1 to 100 letters, digits, '.', '_', ':' or '-'")
    return value


def _phone(params: Mapping[str, str]) -> str:
    value = params.get("phoneNumber", "").replace(" ", "")
    if value and not PHONE_PATTERN.fullmatch(value):
        raise WebhookParamError("phoneNumber", "must be 6 to 20 digits")
    return value.lstrip("+")


def _reception_date(params: Mapping[str, str]) -> str:
    value = params.get("receptionDate", "").strip()
    if not value:
        return ""
    try:
        datetime.strptime(value, RECEPTION_DATE_FORMAT)  # noqa: DTZ007 - provider local time
    except ValueError:
        raise WebhookParamError("receptionDate", "must be YYYY-MM-DD HH:MM:SS") from None
    return value


class ReceiptBook:
    """Applies receipts and stores replies, each in one atomic script."""

    def __init__(self, connection: Redis, *, keep_s: int = 0) -> None:
        self._redis = connection
        self._keep_s = keep_s
        """``SMSQ_REPLIES_TTL_S``: receipts and replies are kept at most this long; 0: as long as
        their message (``SMSQ_OUTCOME_TTL_S``)."""
        self._receipt = connection.register_script(lua.load("receipts_apply", **RECEIPT_VALUES))
        self._reply = connection.register_script(lua.load("receipts_store_reply", **HOOK_VALUES))

    def apply_receipt(self, receipt: Receipt, *, event_id: str) -> Applied:
        raw = self._receipt(
            keys=[keys.sms_id(receipt.sms_id), keys.METRICS, *keys.callback_keys()],
            args=[
                str(receipt.status),
                receipt.status_text,
                receipt.reception_date,
                utc_now_iso(),
                event_id,
                receipt.sms_id,
                receipt.campaign_id,
                self._keep_s,
            ],
        )
        return _applied(raw)

    def store_reply(self, reply: Reply, *, event_id: str) -> Applied:
        if not reply.sms_id:
            self._redis.hincrby(keys.METRICS, "replies_unknown", 1)
            return Applied("unknown")
        data = {
            "sms_mo_id": reply.sms_mo_id,
            "message": reply.text,
            "sms_id": reply.sms_id,
            "reception_date": reply.reception_date,
            "campaign_id": reply.campaign_id,
        }
        raw = self._reply(
            keys=[keys.sms_id(reply.sms_id), keys.METRICS, *keys.callback_keys()],
            args=[
                reply.sms_mo_id,
                json.dumps(data),
                utc_now_iso(),
                reply.sms_id,
                event_id,
                self._keep_s,
            ],
        )
        return _applied(raw)


def _applied(raw: list[bytes | str]) -> Applied:
    values = [decoded(v) for v in raw]
    return Applied(
        outcome=values[0],
        message_id=values[1] if len(values) > 1 else None,
        phone=values[2] if len(values) > 2 else None,
        status=int(values[3]) if len(values) > 3 else None,
    )
