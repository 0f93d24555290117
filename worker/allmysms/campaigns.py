"""AllMySMS ``deleteCampaign``: its answers (shared by the sandbox and the gateway) and the
client's parser of them.

The provider's page documents only the success, ``{"status":"OK"}``, for ``campId`` of a
deferred campaign. Its error answer is not documented: smsq answers (sandbox, gateway) in the
shape of the sendSms error bodies (``{"status": <code>, "statusText": "..."}``), and the parser
treats **every** answer other than ``status`` "OK" (any case) as a refusal, naming what was said.
Reading a refusal as a success would mark ``cancelled`` a message AllMySMS then sends, so the
parser is tolerant in what it refuses, strict in what it accepts.
"""

from __future__ import annotations

import json
from typing import Any

from producers.errors import OutcomeUnknownError, ProviderRefusedError, shown


DELETED: dict[str, Any] = {"status": "OK"}
"""The documented success answer."""
REFUSED_STATUS = 0
"""The status smsq's own error answers carry (AllMySMS documents none for deleteCampaign; its
getAcks answers ``status`` 0 for "nothing", which clients already guard against)."""
NO_SUCH_CAMPAIGN = "Campaign not found"
ALREADY_SENT = "Campaign already sent: it can no longer be deleted"
NOT_DEFERRED = "Campaign is not deferred: it was sent at once"
MISSING_CAMP_ID = "campId is required"


def refused(status_text: str, status: int = REFUSED_STATUS) -> dict[str, Any]:
    """An error answer in the shape of the sendSms error bodies."""
    return {"status": status, "statusText": status_text}


def parse_delete(http_status: int, body: bytes) -> None:
    """Read a deleteCampaign answer; return only when it says the campaign is deleted.

    Raises:
        OutcomeUnknownError: not HTTP 200, or a body that is not a JSON object (the request
            may have deleted the campaign: nothing proves either way).
        ProviderRefusedError: a JSON object whose ``status`` is not "OK": AllMySMS answered,
            and said no (its ``status`` and ``statusText``, cut short, are in the message).
    """
    if http_status != 200:
        raise OutcomeUnknownError(
            f"AllMySMS deleteCampaign answered HTTP {http_status}", http_status=http_status
        )
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise OutcomeUnknownError(
            "AllMySMS deleteCampaign answered HTTP 200 with a body that is not a JSON object",
            http_status=200,
        )
    status = data.get("status")
    if isinstance(status, str) and status.strip().upper() == "OK":
        return
    text = data.get("statusText")
    raise ProviderRefusedError(
        "deleteCampaign",
        _scalar(status),
        shown(text) if isinstance(text, str) else "",
    )


def _scalar(value: object) -> str:
    """A status as text: numbers and strings as they are, anything else as its JSON type."""
    if isinstance(value, bool) or value is None:
        return "missing" if value is None else json.dumps(value)
    if isinstance(value, int | float | str):
        return shown(str(value), max_chars=20)
    return type(value).__name__
