"""The admin application: routes, session and security-header middleware, and error pages that
never show a traceback."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

import structlog
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from producers.errors import RedisUnavailableError
from worker.admin import (
    actions,
    audit_page,
    auth,
    callbacks_page,
    campaigns_page,
    letters,
    optouts_page,
    probes,
    views,
    workers_page,
)
from worker.admin.context import AdminContext
from worker.admin.rendering import render
from worker.admin.sessions import SESSION_COOKIE, SESSION_MAX_AGE_S
from worker.admin.throttle import FailureBudget, LoginThrottle
from worker.asgi import SecurityHeaders


if TYPE_CHECKING:
    from collections.abc import Mapping

    from redis import Redis
    from starlette.requests import Request
    from starlette.responses import Response

    from worker.settings import Settings

log = structlog.get_logger()

SECURITY_HEADERS = {
    # No script at all: confirmations are server-side pages. form-action and frame-ancestors
    # are not covered by default-src, so they are spelled out.
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    # Pages show phone numbers and message texts: keep them out of every cache.
    "Cache-Control": "no-store",
}
MAX_BODY_BYTES = 64 * 1024
"""Every form here is a few short fields; anything larger is refused before it is parsed."""
ERROR_TEXTS = {
    404: "There is no page here.",
    405: "This page does not accept that kind of request.",
    503: "Redis is not answering. Try again in a moment; nothing was changed.",
    500: "Something went wrong on the server; it has been logged. Nothing was shown or changed.",
}


def create_app(settings: Settings, connection: Redis) -> Starlette:
    """Build the admin web application on ``connection``.

    Call ``settings.require_admin()`` first: this does not check the password's strength.
    """
    routes = [
        Route("/", views.overview, methods=["GET"]),
        Route("/login", auth.login_page, methods=["GET"]),
        Route("/login", auth.login, methods=["POST"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/dead", views.dead_letters, methods=["GET"]),
        Route("/dead/letter", letters.dead_letter, methods=["GET"]),
        Route("/dead/letter/purge", actions.purge_letter, methods=["POST"]),
        Route("/audit", audit_page.audit, methods=["GET"]),
        Route("/workers", workers_page.workers, methods=["GET"]),
        Route("/campaigns", campaigns_page.campaign, methods=["GET"]),
        Route("/callbacks", callbacks_page.callbacks, methods=["GET"]),
        Route("/callbacks/requeue", callbacks_page.requeue, methods=["POST"]),
        Route("/optouts", optouts_page.optouts, methods=["GET"]),
        Route("/optouts", optouts_page.change, methods=["POST"]),
        Route("/messages/{key:path}/requeue", actions.requeue, methods=["POST"]),
        Route("/messages/{key:path}/resolve", actions.resolve, methods=["POST"]),
        Route("/messages/{key:path}/purge", actions.purge, methods=["POST"]),
        Route("/messages/{key:path}/cancel", actions.cancel, methods=["POST"]),
        Route("/messages/{key:path}", views.message, methods=["GET"]),
        Route("/pause", actions.pause, methods=["POST"]),
        Route("/resume", actions.resume, methods=["POST"]),
        Route("/metrics", probes.metrics, methods=["GET"]),
        Route("/healthz", probes.healthz, methods=["GET"]),
    ]
    middleware = [
        Middleware(SecurityHeaders, headers=SECURITY_HEADERS),
        Middleware(
            SessionMiddleware,
            secret_key=settings.admin_session_secret.reveal(),
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE_S,
            same_site="strict",
            # Secure unless turned off for plain-HTTP use (SMSQ_ADMIN_COOKIE_SECURE).
            https_only=settings.admin_cookie_secure,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        max_body_size=MAX_BODY_BYTES,
        exception_handlers={
            HTTPException: http_error,
            RedisError: redis_unavailable,
            RedisUnavailableError: redis_unavailable,
            ClientDisconnect: client_gone,
            Exception: server_error,
        },
    )
    app.state.admin = AdminContext(settings, connection, LoginThrottle(), FailureBudget(connection))
    return app


def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    status = exc.status_code
    phrase = HTTPStatus(status).phrase
    # Our own raises carry a sentence for the operator; starlette's carry the bare phrase.
    text = exc.detail if exc.detail != phrase else ERROR_TEXTS.get(status, phrase)
    return _error_page(request, status, phrase, text, exc.headers)


def redis_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("admin.redis_unavailable", error=type(exc).__name__, path=request.url.path)
    return _error_page(request, 503, "Redis unavailable", ERROR_TEXTS[503])


def client_gone(request: Request, exc: Exception) -> Response:
    """The client left (or was cut off by a read deadline) before its body was in: no error."""
    log.info("admin.client_disconnected", path=request.url.path)
    return _error_page(request, 400, "Bad Request", "The request did not arrive whole.")


def server_error(request: Request, exc: Exception) -> Response:
    log.error("admin.request_failed", path=request.url.path, exc_info=exc)
    # This response leaves through starlette's outermost middleware, before SecurityHeaders.
    return _error_page(request, 500, "Server error", ERROR_TEXTS[500], SECURITY_HEADERS)


def _error_page(
    request: Request, status: int, title: str, text: str, headers: Mapping[str, str] | None = None
) -> Response:
    return render(
        request,
        "error.html",
        {"status": status, "title": title, "text": text},
        status=status,
        headers=headers,
        bare=True,
    )
