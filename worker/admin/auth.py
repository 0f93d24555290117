"""Logging in and out, and the guard that sends anonymous visitors to the login page.

Both fields are compared in constant time and both are always compared, so neither the answer
nor its timing says which one was wrong.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from worker.admin.context import context_of
from worker.admin.devices import recognised_device, remember_device
from worker.admin.rendering import render
from worker.admin.sessions import (
    checked_form,
    current_user,
    end_session,
    field,
    start_session,
)


if TYPE_CHECKING:
    from starlette.requests import Request

log = structlog.get_logger()

View = Callable[["Request", str], Awaitable[Response]]
"""A page handler that receives the logged-in user's name."""
LOGIN_FAILED = "Wrong user name or password."


def login_required(view: View) -> Callable[[Request], Awaitable[Response]]:
    """Run ``view`` for a logged-in user; anyone else is redirected to the login page."""

    @functools.wraps(view)
    async def guarded(request: Request) -> Response:
        user = await current_user(request)
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return await view(request, user)

    return guarded


async def login_page(request: Request) -> Response:
    next_url = _local(request.query_params.get("next", ""))
    if await current_user(request) is not None:
        return RedirectResponse(next_url, status_code=303)
    return render(request, "login.html", {"next": next_url, "error": None})


async def login(request: Request) -> Response:
    admin = context_of(request)
    client = request.client.host if request.client else "unknown"
    device = recognised_device(request)
    wait_s = admin.throttle.retry_after_s(client)
    scope = "address"
    if not wait_s and device is not None:
        wait_s, scope = admin.throttle.retry_after_s(f"device:{device}"), "device"
    if not wait_s and device is None:
        # The site's budget binds browsers never seen to log in; known ones may still try.
        wait_s, scope = await run_in_threadpool(admin.budget.retry_after_s), "site"
    if wait_s:
        log.warning("admin.login.throttled", client=client, scope=scope, retry_after_s=wait_s)
        return render(
            request,
            "login.html",
            {"next": "/", "error": f"Too many failed logins. Try again in {wait_s} s."},
            status=429,
            headers={"Retry-After": str(wait_s)},
        )
    form = await checked_form(request)
    next_url = _local(field(form, "next"))
    user = form.get("user")
    password = form.get("password")
    settings = admin.settings
    user_ok = hmac.compare_digest(_bytes(user), settings.admin_user.encode())
    password_ok = hmac.compare_digest(_bytes(password), settings.admin_password.reveal().encode())
    if not (user_ok and password_ok):
        admin.throttle.fail(client)
        if device is not None:
            admin.throttle.fail(f"device:{device}")
        await run_in_threadpool(admin.budget.fail)
        log.warning("admin.login.failed", client=client, known_device=device is not None)
        return render(request, "login.html", {"next": next_url, "error": LOGIN_FAILED}, status=401)
    admin.throttle.succeed(client)
    if device is not None:
        admin.throttle.succeed(f"device:{device}")
    await start_session(request, settings.admin_user)
    log.info("admin.login.succeeded", user=settings.admin_user, client=client)
    if settings.admin_cookie_secure and request.url.scheme != "https":
        log.warning(
            "admin.login.cookie_over_http",
            hint="browsers drop a Secure cookie set over http:// (except from localhost): "
            "serve the page over HTTPS, list the proxy in SMSQ_TRUSTED_PROXIES, or set "
            "SMSQ_ADMIN_COOKIE_SECURE=false for plain-HTTP use",
        )
    response = RedirectResponse(next_url, status_code=303)
    remember_device(request, response, device)
    return response


async def logout(request: Request) -> Response:
    await checked_form(request)
    await end_session(request)
    return RedirectResponse("/login", status_code=303)


def _bytes(value: object) -> bytes:
    return value.encode() if isinstance(value, str) else b""


def _local(url: str) -> str:
    """``url`` if it is a path on this site, else ``/``: ``next`` must not lead elsewhere."""
    if (
        url.startswith("/")
        and not url.startswith(("//", "/\\", "/login"))
        and not any(c in url for c in "\\\r\n\t")
    ):
        return url
    return "/"
