"""Who is logged in, and the per-session CSRF token every POST form must carry.

The session lives in a signed cookie (starlette's ``SessionMiddleware``): it holds the user name,
the login time, the CSRF token, a tag of the credentials (never the password itself) and a random
session id. A login also writes ``smsq:admin:session:<sha256 of the id>`` to Redis, expiring with
the session; logout deletes it. A cookie counts only while its record exists, so a copy of the
cookie taken before the logout is refused everywhere after it (the signature alone cannot be
revoked). Redis holds only the hash: a dump of it gives no usable cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from producers import keys
from worker.admin.context import context_of


if TYPE_CHECKING:
    from starlette.datastructures import FormData
    from starlette.requests import Request

    from worker.settings import Settings

SESSION_COOKIE = "smsq_admin"
SESSION_MAX_AGE_S = 8 * 3600
"""A login lasts one working day, counted from the login, however active the session is."""
SESSION_PREFIX = keys.ADMIN_SESSION_PREFIX
SESSION_ID_BYTES = 32
CSRF_FIELD = "csrf"
MAX_FORM_FIELDS = 20
STALE_FORM = "This form was stale or did not come from this site. Reload the page and try again."


async def current_user(request: Request) -> str | None:
    """The logged-in user, or None (never logged in, expired, logged out, or credentials changed
    since); remembered on the request for :func:`shown_user`."""
    user = await _check(request)
    request.state.user = user
    return user


def shown_user(request: Request) -> str | None:
    """The user :func:`current_user` found for this request (None if it was not asked)."""
    user = getattr(request.state, "user", None)
    return user if isinstance(user, str) else None


async def _check(request: Request) -> str | None:
    session = request.session
    admin = context_of(request)
    settings = admin.settings
    since = session.get("since")
    if session.get("user") != settings.admin_user or not isinstance(since, (int, float)):
        return None
    if time.time() - since > SESSION_MAX_AGE_S:
        return None
    # A changed password or session secret logs everyone out.
    if not hmac.compare_digest(str(session.get("tag", "")), credentials_tag(settings)):
        return None
    sid = session.get("sid")
    if not isinstance(sid, str):
        return None
    # Logged out (or never started here): the signed cookie alone is not enough.
    if not await run_in_threadpool(admin.connection.exists, _session_key(sid)):
        return None
    return settings.admin_user


async def start_session(request: Request, user: str) -> None:
    """Log ``user`` in with a fresh session, so nothing from before the login carries over."""
    sid = secrets.token_urlsafe(SESSION_ID_BYTES)
    connection = context_of(request).connection
    await run_in_threadpool(
        lambda: connection.set(_session_key(sid), user, ex=int(SESSION_MAX_AGE_S))
    )
    request.session.clear()
    request.session.update(
        user=user,
        since=time.time(),
        sid=sid,
        csrf=secrets.token_urlsafe(32),
        tag=credentials_tag(context_of(request).settings),
    )


async def end_session(request: Request) -> None:
    """Log out: this session's record goes, so no copy of its cookie works any more."""
    sid = request.session.get("sid")
    if isinstance(sid, str):
        await run_in_threadpool(context_of(request).connection.delete, _session_key(sid))
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


def _session_key(sid: str) -> str:
    return SESSION_PREFIX + hashlib.sha256(sid.encode()).hexdigest()


def credentials_tag(settings: Settings) -> str:
    secret = settings.admin_session_secret.reveal().encode()
    material = f"{settings.admin_user}\0{settings.admin_password.reveal()}".encode()
    return hmac.new(secret, material, hashlib.sha256).hexdigest()[:32]
