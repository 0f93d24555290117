"""Tolerant parsers of AllMySMS's polling answers: getAcks, getAckBySmsId (acknowledgements),
getPulls, getPull and getPullBySmsId (replies). Pure functions.

What is known (``allmysms-api.md`` s. 4) and what these parsers accept:

* an ack's status is ``statut`` (davaxi) or ``status`` (MedShake): both are read, as strings
  or numbers; an ack without a readable one is kept with ``status=None`` (proof of the send,
  not of a delivery);
* a top-level ``"status": "0"`` (or ``0``) with no list means nothing to report (MedShake);
  any other answer without the list is an error, named with its status;
* ``cliMsgId`` is read at the top level (getAcks, getPull) and on each entry, under that
  spelling, ``climsgid`` or ``CLIMSGID`` (the real spelling in the answer is only seen in
  Gestime's getPull reader);
* a list given as a single object is read as a list of one;
* entries that are not objects, and replies without an ``id`` and a ``message``, are skipped
  (a reply without id cannot be stored once).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from producers.errors import OutcomeUnknownError


CLI_MSG_ID_NAMES = ("cliMsgId", "climsgid", "CLIMSGID")


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledgement: the recipient and what the operator reported."""

    phone: str
    status: int | None
    """1 delivered, 2 not delivered, 3 transmitted, 4/5 rejected; None when unreadable."""
    comment: str = ""
    reception_date: str = ""
    cli_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class Acks:
    """A getAcks answer (empty when AllMySMS had nothing)."""

    acks: tuple[Ack, ...] = ()
    cli_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class Mo:
    """One reply (MO SMS)."""

    mo_id: str
    phone: str
    text: str
    campaign_id: str = ""
    reception_date: str = ""
    cli_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class Mos:
    """A getPulls / getPull answer (empty when AllMySMS had nothing)."""

    mos: tuple[Mo, ...] = ()
    cli_msg_id: str = ""


def parse_acks(http_status: int, body: bytes) -> Acks:
    """Read a getAcks answer.

    Raises:
        OutcomeUnknownError: not HTTP 200, not a JSON object, or neither ``acks`` nor a
            top-level status 0 (an error answer such as 102 names its status).
    """
    data = _document("getAcks", http_status, body)
    entries = _entries(data, "acks", "getAcks")
    top = _cli_msg_id(data)
    return Acks(tuple(_ack(e, top) for e in entries), top)


def parse_ack(http_status: int, body: bytes) -> Ack | None:
    """Read a getAckBySmsId answer: one ack object (or an ``acks`` list of one); None when
    AllMySMS had nothing.

    Raises:
        OutcomeUnknownError: as :func:`parse_acks`.
    """
    data = _document("getAckBySmsId", http_status, body)
    if "phoneNumber" in data:
        return _ack(data, _cli_msg_id(data))
    entries = _entries(data, "acks", "getAckBySmsId")
    return _ack(entries[0], _cli_msg_id(data)) if entries else None


def parse_mos(http_status: int, body: bytes, *, endpoint: str = "getPulls") -> Mos:
    """Read a getPulls or getPull answer.

    Raises:
        OutcomeUnknownError: not HTTP 200, not a JSON object, or neither ``mos`` nor a
            top-level status 0.
    """
    data = _document(endpoint, http_status, body)
    entries = _entries(data, "mos", endpoint)
    top = _cli_msg_id(data)
    mos = (_mo(e, top) for e in entries)
    return Mos(tuple(m for m in mos if m is not None), top)


def parse_mo(http_status: int, body: bytes) -> Mo | None:
    """Read a getPullBySmsId answer (one reply; its ``id`` may be absent); None when
    AllMySMS had nothing.

    Raises:
        OutcomeUnknownError: as :func:`parse_mos`.
    """
    data = _document("getPullBySmsId", http_status, body)
    if "message" not in data:
        _entries(data, "mos", "getPullBySmsId")  # raises unless it is a status 0
        return None
    return Mo(
        mo_id=_text(data.get("id")),
        phone=_phone(data.get("phoneNumber")),
        text=_text(data.get("message")),
        campaign_id=_text(data.get("campaignId")),
        reception_date=_text(data.get("receptionDate")),
        cli_msg_id=_cli_msg_id(data),
    )


def _document(endpoint: str, http_status: int, body: bytes) -> dict[str, Any]:
    if http_status != 200:
        raise OutcomeUnknownError(
            f"AllMySMS {endpoint} answered HTTP {http_status}", http_status=http_status
        )
    try:
        data = json.loads(body)
    except ValueError:
        raise OutcomeUnknownError(
            f"AllMySMS {endpoint} answered HTTP 200 with a body that is not JSON",
            http_status=200,
        ) from None
    if not isinstance(data, dict):
        raise OutcomeUnknownError(
            f"AllMySMS {endpoint} answered HTTP 200 with JSON that is not an object",
            http_status=200,
        )
    return data


def _entries(data: dict[str, Any], name: str, endpoint: str) -> list[dict[str, Any]]:
    raw = data.get(name)
    if isinstance(raw, dict):
        raw = [raw]
    if isinstance(raw, list):
        return [e for e in raw if isinstance(e, dict)]
    status = data.get("status")
    if _text(status) == "0" or (raw is None and status is None and not data):
        return []
    detail = f" (status {_text(status)})" if status is not None else ""
    raise OutcomeUnknownError(
        f"AllMySMS {endpoint} answered without {name}{detail}", http_status=200
    )


def _ack(entry: dict[str, Any], top: str) -> Ack:
    raw = entry.get("statut", entry.get("status"))
    return Ack(
        phone=_phone(entry.get("phoneNumber")),
        status=_int(raw),
        comment=_text(entry.get("comment")),
        reception_date=_text(entry.get("receptionDate")),
        cli_msg_id=_cli_msg_id(entry) or top,
    )


def _mo(entry: dict[str, Any], top: str) -> Mo | None:
    mo_id = _text(entry.get("id") or entry.get("smsMoId"))
    if not mo_id or "message" not in entry:
        return None
    return Mo(
        mo_id=mo_id,
        phone=_phone(entry.get("phoneNumber")),
        text=_text(entry.get("message")),
        campaign_id=_text(entry.get("campaignId")),
        reception_date=_text(entry.get("receptionDate")),
        cli_msg_id=_cli_msg_id(entry) or top,
    )


def _cli_msg_id(data: dict[str, Any]) -> str:
    for name in CLI_MSG_ID_NAMES:
        value = _text(data.get(name))
        if value:
            return value
    return ""


def _text(value: object) -> str:
    if value is None or isinstance(value, bool | dict | list):
        return ""
    return str(value).strip()


def _phone(value: object) -> str:
    return _text(value).replace(" ", "").lstrip("+")


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
