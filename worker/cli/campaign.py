"""Campaign files: one text for many recipients, one recipient per CSV line.

``smsq enqueue --file numbers.csv --text "Hi #param_1#" --key spring-sale`` reads lines of
``phone[,param_1,param_2...]`` and turns them into requests of up to ``MAX_RECIPIENTS``
recipients keyed ``<key>:<block>``; each is then split into parts of ``SMSQ_CHUNK_RECIPIENTS``
at enqueue. Running the same command again enqueues nothing new (the keys already exist).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from producers.contract import MAX_RECIPIENTS, PLACEHOLDER_PATTERN
from producers.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class Campaign:
    """What every recipient of the file shares."""

    key: str
    text: str
    sender: str | None = None
    lane: str | None = None
    send_at: str | None = None
    purpose: str | None = None

    @property
    def params_needed(self) -> int:
        return max((int(n) for n in PLACEHOLDER_PATTERN.findall(self.text)), default=0)


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    error: InvalidRequestError


def campaign_requests(
    campaign: Campaign, lines: Iterable[str], block: int = MAX_RECIPIENTS
) -> Iterator[dict[str, Any] | BadLine]:
    """Contract requests of up to ``block`` recipients each, in file order, and one
    :class:`BadLine` per line that cannot be a recipient (a blank line is skipped)."""
    needed = campaign.params_needed
    recipients: list[dict[str, Any]] = []
    number = 0
    for line_number, row in _rows(lines):
        if isinstance(row, InvalidRequestError):
            yield BadLine(line_number, row)
            continue
        cells = [cell.strip() for cell in row]
        if not cells or not any(cells):
            continue
        if line_number == 1 and not any(c.isdigit() for c in cells[0]):
            continue  # a header line ("phone,first_name")
        phone, params = cells[0], cells[1:]
        if len(params) < needed:
            yield BadLine(
                line_number,
                InvalidRequestError(
                    f"line {line_number}",
                    f"text uses #param_{needed}# but the line has "
                    f"{len(params)} value(s) after the phone number",
                ),
            )
            continue
        recipients.append({"phone": phone, "params": params[:needed]})
        if len(recipients) == block:
            number += 1
            yield _request(campaign, number, recipients)
            recipients = []
    if recipients:
        yield _request(campaign, number + 1, recipients)


def _rows(lines: Iterable[str]) -> Iterator[tuple[int, list[str] | InvalidRequestError]]:
    """CSV rows with the number of the line they end on, or the reason a line is not one
    (a CSV error such as a cell over the csv module's limit, or bytes that are not UTF-8, read
    with ``surrogateescape``). The reader goes on after a bad line."""
    reader = csv.reader(lines)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield (
                reader.line_num,
                InvalidRequestError(f"line {reader.line_num}", f"is not a CSV line ({error})"),
            )
            continue
        if not all(_is_unicode(cell) for cell in row):
            yield (
                reader.line_num,
                InvalidRequestError(f"line {reader.line_num}", "is not valid UTF-8"),
            )
            continue
        yield reader.line_num, row


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _request(campaign: Campaign, number: int, recipients: list[dict[str, Any]]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "key": f"{campaign.key}:{number}",
        "text": campaign.text,
        "to": recipients,
        "campaign": campaign.key[:100],
    }
    for name in ("sender", "lane", "send_at", "purpose"):
        value = getattr(campaign, name)
        if value is not None:
            request[name] = value
    return request
