"""The gateway application: sendSms, deleteCampaign and the read-only account routes, a health
probe, and errors in AllMySMS's shape that never show a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from producers.enqueue import Producer
from producers.errors import RedisUnavailableError
from producers.redis_errors import translate_redis_errors
from producers.store import MessageStore
from worker.asgi import SecurityHeaders
from worker.callbacks.policy import CallbackPolicy
from worker.gateway import campaigns
from worker.gateway.accounts import ProducerBook
from worker.gateway.acks import ack_routes
from worker.gateway.context import GatewayContext, context_of
from worker.gateway.headers import SECURITY_HEADERS
from worker.gateway.limits import GatewayLimits
from worker.gateway.provider_account import provider_account_routes
from worker.gateway.pulls import pull_routes
from worker.gateway.sendsms import (
    RETRY_AFTER_S,
    answer_format,
    http_error,
    query_params,
    send_sms,
    to_response,
)
from worker.gateway.simulate import simulate_routes
from worker.gateway.status import status_routes
from worker.gateway.webhooks import webhook_routes
from worker.store.quotas import Quotas


if TYPE_CHECKING:
    from redis import Redis
    from starlette.requests import Request
    from starlette.responses import Response

    from worker.settings import Settings

log = structlog.get_logger()

SEND_PATHS = ("/http/9.0/sendSms/", "/http/9.0/sendSms", "/sendSms/", "/sendSms")
"""AllMySMS's own path (with or without the slash), so clients change only the host; and short."""


def create_app(settings: Settings, connection: Redis) -> Starlette:
    """Build the gateway application on ``connection``.

    Raises:
        ConfigError: no producer account is configured (``SMSQ_PRODUCERS``).
    """
    settings.require_gateway()
    routes = [Route(path, send_sms, methods=["GET", "POST"]) for path in SEND_PATHS]
    routes += simulate_routes(settings)  # answers 501 without ALLMYSMS_LOGIN/_API_KEY
    routes += campaigns.routes(settings, connection)
    routes += ack_routes() + pull_routes()  # answered from smsq's own receipts and replies
    routes += status_routes()  # smsq's own: a producer's message as smsq status --json
    routes += provider_account_routes(settings)  # asked of AllMySMS; 501 without ALLMYSMS_*
    routes.append(Route("/healthz", healthz, methods=["GET"]))
    routes += webhook_routes(settings, connection)  # [] without SMSQ_WEBHOOK_SECRET
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders, headers=SECURITY_HEADERS)],
        exception_handlers={
            HTTPException: http_exception,
            RedisError: redis_unavailable,
            RedisUnavailableError: redis_unavailable,
            Exception: server_error,
        },
    )
    app.state.gateway = GatewayContext(
        settings=settings,
        producer=Producer(connection, settings.producer),
        store=MessageStore(connection),
        book=ProducerBook(settings.producers),
        callback_policy=CallbackPolicy.from_settings(settings),
        limits=GatewayLimits(connection, settings),
        quotas=Quotas(connection),
    )
    return app


async def healthz(request: Request) -> Response:
    """200 when Redis answers a PING, else 503 (through :func:`redis_unavailable`)."""
    connection = context_of(request).producer.connection

    def ping() -> None:
        with translate_redis_errors(connection):
            connection.ping()

    await run_in_threadpool(ping)
    return JSONResponse({"ok": True})


def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    return to_response(
        http_error(
            exc.status_code, answer_format(query_params(request)), headers=dict(exc.headers or {})
        )
    )


def redis_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("gateway.redis_unavailable", error=type(exc).__name__, path=loggable_path(request))
    return to_response(
        http_error(
            503, answer_format(query_params(request)), headers={"Retry-After": str(RETRY_AFTER_S)}
        )
    )


def server_error(request: Request, exc: Exception) -> Response:
    log.error(
        "gateway.request_failed",
        path=loggable_path(request),
        error=type(exc).__name__,
        exc_info=exc,
    )
    return to_response(http_error(500, answer_format(query_params(request))))


def loggable_path(request: Request) -> str:
    """The request path for logs: webhook paths carry ``SMSQ_WEBHOOK_SECRET``, so not theirs."""
    path = request.url.path
    return "/webhooks/allmysms/***" if path.startswith("/webhooks/") else path
