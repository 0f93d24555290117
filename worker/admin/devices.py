"""Device cookies: a browser that logged in successfully gets a signed, random device id, so
it is recognised at its next login even while the site's failure budget is spent (see
:mod:`worker.admin.throttle`). The cookie grants nothing else: the password is still checked,
and failures with it are limited per device like per address.

The signature covers the credentials tag, so a new password or session secret forgets every
device. Nothing is stored server-side.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from worker.admin.context import context_of
from worker.admin.sessions import credentials_tag


if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

DEVICE_COOKIE = "smsq_admin_device"
DEVICE_MAX_AGE_S = 90 * 86_400
"""A browser stays recognised for 90 days after its last successful login."""
DEVICE_ID_BYTES = 16


def recognised_device(request: Request) -> str | None:
    """The device id of the request's valid device cookie, or None."""
    value = request.cookies.get(DEVICE_COOKIE, "")
    device, _, signature = value.partition(".")
    if not device or not signature:
        return None
    expected = _sign(request, device)
    return device if hmac.compare_digest(signature.encode(), expected.encode()) else None


def remember_device(request: Request, response: Response, device: str | None) -> None:
    """Give the browser a device cookie (a new id unless it had a valid one)."""
    device = device or secrets.token_urlsafe(DEVICE_ID_BYTES)
    response.set_cookie(
        DEVICE_COOKIE,
        f"{device}.{_sign(request, device)}",
        max_age=DEVICE_MAX_AGE_S,
        path="/login",
        secure=context_of(request).settings.admin_cookie_secure,
        httponly=True,
        samesite="strict",
    )


def _sign(request: Request, device: str) -> str:
    settings = context_of(request).settings
    secret = settings.admin_session_secret.reveal().encode()
    material = f"device\0{device}\0{credentials_tag(settings)}".encode()
    return hmac.new(secret, material, hashlib.sha256).hexdigest()
