"""A message's recipients as the page lists them, one page of :data:`PAGE_ROWS` at a time.

Each row is one recipient of the request, in request order, with its outcome: accepted by
AllMySMS (smsId, delivery receipt), refused by AllMySMS, or still the state of its message (of
its part, for a split message); then the numbers dropped at enqueue, with their reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from producers.errors import InvalidInputError


if TYPE_CHECKING:
    from producers.records import MessageRecord

PAGE_ROWS = 100
"""Recipients on one page of a message."""
PAGE_MAX_DIGITS = 9
"""A ``page`` longer than this is past the end of any message (and never parsed whole)."""


@dataclass(frozen=True, slots=True)
class Recipient:
    number: int
    """1-based position in the message."""
    phone: str
    params: str
    outcome: str
    sms_id: str
    receipt: str
    part: str | None
    """A split message: the key of the part that carries this recipient."""


@dataclass(frozen=True, slots=True)
class RecipientPage:
    rows: list[Recipient]
    page: int
    pages: int
    total: int

    @property
    def first(self) -> int:
        """Position of the first row shown (0 when there is none)."""
        return (self.page - 1) * PAGE_ROWS + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


def recipients(record: MessageRecord) -> list[Recipient]:
    """Every recipient of ``record`` with its outcome, then those dropped at enqueue."""
    parts = _part_of_each(record)
    rows = []
    for number, entry in enumerate(_recipients(record.request), 1):
        phone, params = _phone_and_params(entry)
        part_key, part_state = parts[number - 1] if number <= len(parts) else (None, None)
        receipt = record.receipts.get(phone)
        rows.append(
            Recipient(
                number=number,
                phone=phone,
                params=", ".join(params),
                outcome=_outcome(record, phone, part_state),
                sms_id=record.sms_ids.get(phone, ""),
                receipt=_receipt(receipt) if receipt else "",
                part=part_key,
            )
        )
    for refused in record.refused_numbers:
        rows.append(
            Recipient(
                number=len(rows) + 1,
                phone=str(refused.get("phone", "")),
                params="",
                outcome=f"dropped at enqueue ({refused.get('field')}: {refused.get('reason')})",
                sms_id="",
                receipt="",
                part=None,
            )
        )
    return rows


def page_count(total: int) -> int:
    return max(1, -(-total // PAGE_ROWS))


def parse_page(text: str | None, pages: int) -> int:
    """The page number asked for in ``?page=``; 1 when absent.

    Raises:
        InvalidInputError: not a whole number from 1 to ``pages``.
    """
    if text is None:
        return 1
    value = text.strip()
    digits = value.isascii() and value.isdigit()
    if not digits or len(value) > PAGE_MAX_DIGITS or not 1 <= int(value) <= pages:
        span = "1" if pages == 1 else f"1 to {pages:,}"
        raise InvalidInputError(
            "page", f"must be a whole number from {span} ({PAGE_ROWS} recipients a page)"
        )
    return int(value)


def page_of(rows: list[Recipient], page: int) -> RecipientPage:
    start = (page - 1) * PAGE_ROWS
    return RecipientPage(
        rows[start : start + PAGE_ROWS], page=page, pages=page_count(len(rows)), total=len(rows)
    )


def _recipients(request: dict[str, Any]) -> list[Any]:
    to = request.get("to", [])
    return to if isinstance(to, list) else [to]


def _phone_and_params(entry: Any) -> tuple[str, list[str]]:
    if isinstance(entry, dict):
        params = entry.get("params") or []
        return str(entry.get("phone", "")), [str(p) for p in params]
    return str(entry), []


def _part_of_each(record: MessageRecord) -> list[tuple[str | None, str | None]]:
    """For a split message, the (key, state) of the part of each recipient, in order: parts
    take the recipients in request order."""
    out: list[tuple[str | None, str | None]] = []
    for part in record.parts:
        out.extend([(part.get("key"), part.get("state"))] * int(part.get("recipients") or 0))
    return out


def _outcome(record: MessageRecord, phone: str, part_state: str | None) -> str:
    if phone in record.sms_ids:
        return "accepted by AllMySMS"
    if phone in record.invalid_numbers:
        return "refused by AllMySMS (invalid number)"
    return part_state or record.state.value


def _receipt(receipt: dict[str, Any]) -> str:
    when = receipt.get("reception_date") or receipt.get("received_at", "")
    text = receipt.get("status_text") or receipt.get("status", "")
    return f"{receipt.get('outcome', '')} ({text}) {when}".strip()
