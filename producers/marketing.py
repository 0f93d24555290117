"""What a marketing message needs before it is accepted: its purpose and the STOP mention.

French law (CPCE L34-5, CNIL) asks every commercial SMS for a free way to opt out; with a
custom sender (``TPOA``), operators show it only when the text carries the mention
"STOP au 36180" (AllMySMS's shared short code takes the STOP replies). Transactional messages
(codes, deliveries, appointments) need none. Sending hours for marketing are the workers'
business (``worker.send.hours``): they hold a message, they never refuse it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from producers.errors import InvalidRequestError


class Purpose(StrEnum):
    """Why a message is sent: the rules for marketing apply only to ``marketing``."""

    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class StopPolicy(StrEnum):
    """What happens to a marketing text with a custom sender and no STOP mention."""

    APPEND = "append"
    """The mention is added on a new line (and counted in the length and the segments)."""
    REFUSE = "refuse"
    """The request is refused, naming ``text``."""


SHORT_CODE = "36180"
"""AllMySMS's shared short code: the sender when ``TPOA`` is omitted, and where STOP goes."""
STOP_MENTION = f"STOP au {SHORT_CODE}"
"""Default of ``SMSQ_MARKETING_STOP_MENTION``."""
STOP_MENTION_MAX_CHARS = 40


@dataclass(frozen=True, slots=True)
class StopRule:
    """``SMSQ_MARKETING_STOP_MENTION`` and ``SMSQ_MARKETING_STOP_POLICY``."""

    mention: str = STOP_MENTION
    policy: StopPolicy = StopPolicy.APPEND

    def apply(self, text: str, *, sender: str | None, max_chars: int) -> str:
        """``text`` with the mention when a marketing message needs it (a custom sender).

        Raises:
            InvalidRequestError: names ``text``: the mention is missing and the policy refuses,
                or appending it would pass ``max_chars``.
        """
        if sender is None or sender == SHORT_CODE or carries_mention(text, self.mention):
            return text
        if self.policy is StopPolicy.REFUSE:
            raise InvalidRequestError(
                "text",
                f'a marketing message with a custom sender must carry "{self.mention}" '
                "(the free opt-out French law requires; operators hide a custom sender "
                "without it)",
            )
        appended = f"{text.rstrip()}\n{self.mention}"
        if len(appended) > max_chars:
            raise InvalidRequestError(
                "text",
                f'is {len(appended)} characters with "{self.mention}" appended (a marketing '
                f"message with a custom sender needs it); AllMySMS accepts at most {max_chars}",
            )
        return appended


DEFAULT_STOP_RULE = StopRule()


def carries_mention(text: str, mention: str) -> bool:
    """Whether ``text`` holds ``mention``, ignoring case, accents and runs of spaces
    ("Stop au 36180", and "STOP  AU 36180" count; "STOP36180" does not)."""
    return _folded(mention) in _folded(text)


def parse_purpose(value: object) -> Purpose:
    """The ``purpose`` field of a request; absent: transactional.

    Raises:
        InvalidRequestError: names ``purpose``.
    """
    if value is None:
        return Purpose.TRANSACTIONAL
    if isinstance(value, str):
        try:
            return Purpose(value)
        except ValueError:
            pass
    names = " | ".join(p.value for p in Purpose)
    raise InvalidRequestError("purpose", f"must be one of {names}")


def _folded(text: str) -> str:
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    )
    return re.sub(r"\s+", " ", stripped.casefold()).strip()
