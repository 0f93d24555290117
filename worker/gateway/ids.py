"""Per-recipient ids the gateway hands out (``smsIds[].smsId``): ``<message_id>-<n>``.

``message_id`` is smsq's 32-hex id of the message (``producers.keys.message_id``) and ``n`` the
recipient's 1-based position in the stored request; ``smsq status`` accepts both forms.
"""

from __future__ import annotations

import re


SMS_ID_PATTERN = re.compile(r"([0-9a-f]{32})(?:-([1-9][0-9]{0,4}))?")
"""A message id, optionally followed by ``-<n>`` (recipient 1 to 99999)."""


def sms_id(message_id: str, position: int) -> str:
    """The id of the ``position``-th recipient (1-based) of a message."""
    return f"{message_id}-{position}"


def parse_sms_id(text: str) -> tuple[str, int | None] | None:
    """Split a gateway id into (message id, 1-based recipient or None); None when it is not one."""
    found = SMS_ID_PATTERN.fullmatch(text.strip())
    if found is None:
        return None
    return found.group(1), int(found.group(2)) if found.group(2) else None
