"""Callback signatures, the Standard Webhooks way: how smsq signs an event and how a receiver
checks it.

smsq POSTs each callback event with three headers (Standard Webhooks 1.0,
https://www.standardwebhooks.com)::

    webhook-id: <event_id>            the same on every attempt of one event: dedupe on it
    webhook-timestamp: <unix seconds> when this attempt was signed
    webhook-signature: v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">

The HMAC key is the secret's UTF-8 bytes: the producer account's ``callback_secret``
(``SMSQ_PRODUCERS``) or ``SMSQ_CALLBACK_SECRET``. The signature covers the id and the time as
well as the body, so a captured POST cannot be replayed later (its timestamp is stale and cannot
be changed) nor passed off as another event. Receivers on a Standard Webhooks library give it
:func:`standard_webhooks_secret` of the same secret; Python backends call
:func:`verify_callback`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from producers.errors import (
    CallbackHeaderError,
    CallbackSignatureError,
    CallbackTimestampError,
    CallbackVerificationError,
    InvalidInputError,
)


ID_HEADER = "webhook-id"
"""The event's id, stable across retries (the body's ``event_id``)."""
TIMESTAMP_HEADER = "webhook-timestamp"
"""Unix seconds when this attempt was signed."""
SIGNATURE_HEADER = "webhook-signature"
"""Space-separated ``v1,<base64>`` signatures (several while a secret is rotated)."""
TOLERANCE_S = 300
"""How far a timestamp may be from the receiver's clock, either way (the spec's 5 minutes)."""
SIGNATURE_VERSION = "v1"
STANDARD_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
"""How Standard Webhooks libraries take a secret: ``whsec_`` and the key's base64."""
_EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def key_of(secret: str) -> bytes:
    """The HMAC key of a callback secret: its UTF-8 bytes."""
    return secret.encode("utf-8")


def standard_webhooks_secret(secret: str) -> str:
    """The secret in the form Standard Webhooks libraries expect (``whsec_<base64 of the key>``),
    e.g. ``standardwebhooks.Webhook(standard_webhooks_secret(secret))``."""
    return STANDARD_SECRET_PREFIX + base64.b64encode(key_of(secret)).decode("ascii")


def signature_v1(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature: HMAC-SHA256 of ``<event_id>.<timestamp>.<body>``."""
    content = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signed_headers(secret: str, event_id: str, body: bytes, *, timestamp: int) -> dict[str, str]:
    """The three headers of one attempt to POST ``body``, signed at ``timestamp``."""
    return {
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_v1(key_of(secret), event_id, timestamp, body),
    }


def verify_callback(
    headers: Mapping[str, str],
    body: bytes,
    secret: str | Sequence[str],
    *,
    tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a callback POST from smsq and return its event; what a receiver runs first.

    Args:
        headers: the request's headers (names in any case).
        body: the exact body bytes received (not re-serialised JSON).
        secret: the callback secret, or several while it is rotated (any one may match).
        tolerance_s: how far ``webhook-timestamp`` may be from ``now``, either way.
        now: the receiver's clock (Unix seconds); default ``time.time()``.

    Raises:
        CallbackHeaderError: a ``webhook-*`` header is missing or malformed.
        CallbackTimestampError: signed more than ``tolerance_s`` ago or ahead (a replay).
        CallbackSignatureError: no signature matches (wrong secret, body or id changed, or
            an event signed the old ``X-Smsq-Signature`` way).
        CallbackVerificationError: signed, but the body is not the event of that id.
        InvalidInputError: no secret given, or an empty one.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(secrets):
        raise InvalidInputError("secret", "must be one or more non-empty callback secrets")
    lowered = {name.lower(): value for name, value in headers.items()}
    event_id = _header(lowered, ID_HEADER)
    stamp = _header(lowered, TIMESTAMP_HEADER)
    offered = _header(lowered, SIGNATURE_HEADER)
    if not _EVENT_ID.fullmatch(event_id):
        raise CallbackHeaderError(ID_HEADER, "must be 1 to 200 letters, digits, '_' or '-'")
    if not _TIMESTAMP.fullmatch(stamp):
        raise CallbackHeaderError(TIMESTAMP_HEADER, "must be whole Unix seconds")
    timestamp = int(stamp)
    skew_s = (time.time() if now is None else now) - timestamp
    if abs(skew_s) > tolerance_s:
        when = "old" if skew_s > 0 else "ahead of this clock"
        raise CallbackTimestampError(
            TIMESTAMP_HEADER,
            f"signed {abs(skew_s):.0f} s {when}, more than the {tolerance_s:g} s tolerated",
        )
    prefix = f"{SIGNATURE_VERSION},"
    candidates = [
        c.removeprefix(prefix).encode("utf-8", "replace")
        for c in offered.split()
        if c.startswith(prefix)
    ]
    if not candidates:
        raise CallbackHeaderError(SIGNATURE_HEADER, "holds no v1,<base64> signature")
    expected = [
        signature_v1(key_of(s), event_id, timestamp, body).split(",", 1)[1].encode("ascii")
        for s in secrets
    ]
    if not any(hmac.compare_digest(c, e) for c in candidates for e in expected):
        raise CallbackSignatureError(
            SIGNATURE_HEADER, "no signature matches this body, id and timestamp"
        )
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if not isinstance(event, dict) or event.get("event_id") != event_id:
        raise CallbackVerificationError("body", f"is not the JSON event {ID_HEADER} names")
    return event


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise CallbackHeaderError(name, "missing")
    return value
