"""Verify an smsq callback in plain Python (standard library only, smsq not installed).

README's receiver example: tests/test_callback_signatures.py runs this very file against real
smsq POSTs.
"""

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def verify_smsq_callback(
    headers: dict[str, str], body: bytes, secrets: str | list[str], tolerance_s: int = 300
) -> dict[str, Any]:
    """Return the event if the POST is smsq's, else raise ValueError.

    headers: the request headers; body: the raw body bytes; secrets: the callback_secret, or a
    list of them while you rotate it.
    """
    h = {name.lower(): value for name, value in headers.items()}
    event_id = h.get("webhook-id", "")
    stamp = h.get("webhook-timestamp", "")
    offered = h.get("webhook-signature", "").split()
    if not (event_id and stamp.isdigit() and offered):
        raise ValueError("missing or malformed webhook-* headers")
    if abs(time.time() - int(stamp)) > tolerance_s:
        raise ValueError("stale webhook-timestamp: replayed or clock off")
    content = f"{event_id}.{stamp}.".encode() + body
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(digest).decode()
        if any(hmac.compare_digest(expected.encode(), s.encode()) for s in offered):
            event: dict[str, Any] = json.loads(body)
            if event.get("event_id") != event_id:
                raise ValueError("body is not the event webhook-id names")
            return event  # deduplicate on event["event_id"]: delivery is at least once
    raise ValueError("bad webhook-signature")
