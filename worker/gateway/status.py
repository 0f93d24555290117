"""The gateway's ``smsqStatus``: a producer asks for the state of its own message over HTTP,
signed in as for sendSms, and gets the record ``smsq status --json`` prints.

The message is named by one of: ``key`` (the ``CLIMSGID`` or ``Idempotency-Key`` it was sent
with), ``campId`` (the ``campaignId`` sendSms answered: smsq's message id) or ``smsId`` (one
recipient: ``<message id>-<n>``; the answer adds ``recipient``). Scoped like getAcks: another
producer's message, a part's id or an unknown id are all ``{"status": 0, "statusText":
"Message not found"}``, so one producer cannot learn that another's message exists. Always
JSON, ``returnformat`` aside: the record's maps are keyed by phone numbers, which are no XML
element names, and no AllMySMS client knows this endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.gateway.endpoints import account_routes
from worker.gateway.owned import ID_MAX_CHARS, own_message, own_recipient
from worker.gateway.sendsms import Answer
from worker.gateway.translate import gateway_key


if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.routing import Route

    from producers.records import MessageRecord
    from worker.gateway.context import GatewayContext
    from worker.settings import ProducerAccount

ENDPOINT = "smsqStatus"
NOT_FOUND = {"status": 0, "statusText": "Message not found"}
ONE_OF = {"status": 0, "statusText": "Name the message: key, campId or smsId (one of them)"}


def status_routes() -> list[Route]:
    return account_routes(ENDPOINT, status)


def status(context: GatewayContext, account: ProducerAccount, params: Mapping[str, str]) -> Answer:
    """The record of the producer's message named by ``key``, ``campId`` or ``smsId``.

    Raises:
        RedisUnavailableError: Redis could not be reached.
    """
    fmt = "json"
    named = {n: params.get(n, "").strip() for n in ("key", "campId", "smsId")}
    given = [n for n, v in named.items() if v]
    if len(given) != 1:
        return Answer(ONE_OF, fmt)
    which, value = given[0], named[given[0]]
    data: dict[str, Any] | None = None
    if which == "smsId":
        found = own_recipient(context, account.login, value)
        if found is not None:
            data = found.record.as_dict()
            data["recipient"] = {
                "position": found.position,
                "phone": found.phone,
                "provider_sms_id": found.record.sms_ids.get(found.phone),
            }
    else:
        record = (
            own_message(context, account.login, value)
            if which == "campId"
            else _by_key(context, account.login, value)
        )
        data = None if record is None else record.as_dict()
    return Answer(data if data is not None else NOT_FOUND, fmt)


def _by_key(context: GatewayContext, login: str, client_key: str) -> MessageRecord | None:
    if len(client_key) > ID_MAX_CHARS:
        return None
    record = context.store.get(gateway_key(login, client_key))
    if record is None or record.parent or record.request.get("producer") != login:
        return None
    return record
