"""Who is logged in, and the per-session CSRF token every POST form must carry.

The session lives in a signed cookie (starlette's ``SessionMiddleware``): it holds the user name,
the login time, the CSRF token and a tag of the credentials, never the password itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException

from worker.admin.context import context_of


if TYPE_CHECKING:
    from starlette.datastructures import FormData
    from starlette.requests import Request

    from worker.settings import Settings

SESSION_COOKIE = "smsq_admin"
SESSION_MAX_AGE_S = 8 * 3600
"""A login lasts one working day, counted from the login, however active the session is."""
CSRF_FIELD = "csrf"
MAX_FORM_FIELDS = 20
STALE_FORM = "This form was stale or did not come from this site. Reload the page and try again."


def current_user(request: Request) -> str | None:
    """The logged-in user, or None (never logged in, expired, or credentials changed since)."""
    session = request.session
    settings = context_of(request).settings
    since = session.get("since")
    if session.get("user") != settings.admin_user or not isinstance(since, (int, float)):
        return None
    if time.time() - since > SESSION_MAX_AGE_S:
        return None
    # A changed password or session secret logs everyone out.
    if not hmac.compare_digest(str(session.get("tag", "")), _credentials_tag(settings)):
        return None
    return settings.admin_user


def start_session(request: Request, user: str) -> None:
    """Log ``user`` in with a fresh session, so nothing from before the login carries over."""
    request.session.clear()
    request.session.update(
        user=user,
        since=time.time(),
        csrf=secrets.token_urlsafe(32),
        tag=_credentials_tag(context_of(request).settings),
    )


def end_session(request: Request) -> None:
    request.session.clear()


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (the login form needs one too)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token matches the session's.

    Raises:
        HTTPException: 403 when the token is missing or wrong.
    """
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    sent = form.get(CSRF_FIELD)
    expected = request.session.get("csrf")
    if not (
        isinstance(sent, str)
        and isinstance(expected, str)
        and hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise HTTPException(403, STALE_FORM)
    return form


def field(form: FormData, name: str) -> str:
    """A text field of the form, stripped; "" when absent (or a file)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _credentials_tag(settings: Settings) -> str:
    secret = settings.admin_session_secret.reveal().encode()
    material = f"{settings.admin_user}\0{settings.admin_password.reveal()}".encode()
    return hmac.new(secret, material, hashlib.sha256).hexdigest()[:32]
