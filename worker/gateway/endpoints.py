"""The gateway's account routes that send nothing (getAcks, getAckBySmsId, getPull,
getPullBySmsId, getPulls, getInfo, getBlacklist): sendSms's sign-in (102 on a bad login),
failed-login throttle and rate limit (429), GET or POST (query, form or multipart), with or
without the trailing slash, at AllMySMS's path and the short one; answered in the client's
format (``returnformat`` json or xml), never with a traceback.

AllMySMS's XML shape for these answers is not documented: the gateway writes the JSON keys as
elements under ``<response>``, a list as one child element per item (``<acks><ack>...``,
``<mos><mo>...``, ``<blacklist><entry>...``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from producers.errors import RedisUnavailableError
from worker.gateway.context import GatewayContext, context_of
from worker.gateway.headers import SECURITY_HEADERS
from worker.gateway.sendsms import (
    RETRY_AFTER_S,
    Answer,
    answer_format,
    body_params,
    client_address,
    http_error,
    query_params,
    read_body,
    sign_in,
    to_response,
    too_many,
)


if TYPE_CHECKING:
    from starlette.requests import Request

    from worker.settings import ProducerAccount

log = structlog.get_logger()

Handler = Callable[[GatewayContext, "ProducerAccount", Mapping[str, str]], Answer]
"""Answers one signed-in, rate-counted request of ``account`` with ``params``; may raise
RedisUnavailableError (answered 503)."""

ITEM_NAMES = {"acks": "ack", "mos": "mo", "blacklist": "entry"}
"""XML element of one item of a list answer, by the list's key."""
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry (control characters a reply's text may hold)."""


def paths(endpoint: str) -> tuple[str, ...]:
    """AllMySMS's own path (with or without the slash), so clients change only the host; and
    short."""
    return (f"/http/9.0/{endpoint}/", f"/http/9.0/{endpoint}", f"/{endpoint}/", f"/{endpoint}")


def account_routes(endpoint: str, handler: Handler) -> list[Route]:
    """GET and POST routes of ``endpoint`` at every path of :func:`paths`."""

    async def route(request: Request) -> Response:
        return await serve(request, handler)

    return [Route(path, route, methods=["GET", "POST"]) for path in paths(endpoint)]


async def serve(request: Request, handler: Handler) -> Response:
    """Read the parameters as sendSms does (body fields win over query fields), then sign in,
    count the request and run ``handler`` in a thread."""
    context = context_of(request)
    query = query_params(request)
    fmt = answer_format(query)
    if request.method not in ("GET", "POST"):  # starlette routes HEAD with GET
        return respond(http_error(405, fmt, headers={"Allow": "GET, POST"}))
    limit = context.settings.gateway_max_body_bytes
    body = await read_body(request, limit)
    if body is None:
        return respond(http_error(413, fmt, f"Request body larger than {limit} bytes"))
    params = dict(query)
    if request.method == "POST":
        fields = await body_params(request.headers, body, limit)
        if fields is None:
            return respond(http_error(400, fmt))
        params.update(fields)
    try:
        answer = await run_in_threadpool(
            signed_in, context, handler, params, client_address(request)
        )
    except (RedisUnavailableError, RedisError) as exc:
        log.warning("gateway.redis_unavailable", error=type(exc).__name__)
        answer = http_error(503, answer_format(params), headers={"Retry-After": str(RETRY_AFTER_S)})
    except Exception as exc:  # answered in the client's format; the app's handler is a backstop
        log.error("gateway.request_failed", error=type(exc).__name__, exc_info=exc)
        answer = http_error(500, answer_format(params))
    return respond(answer)


def signed_in(
    context: GatewayContext, handler: Handler, params: Mapping[str, str], client: str
) -> Answer:
    """Sign in and take one request of the login's rate before ``handler`` answers.

    Raises:
        RedisUnavailableError: Redis could not be reached.
    """
    fmt = answer_format(params)
    account = sign_in(context, params, client, fmt)
    if isinstance(account, Answer):
        return account
    over = context.limits.take_request(account.login)
    if over is not None:
        log.warning(
            "gateway.rate_limited",
            producer=account.login,
            client=client,
            retry_after_s=over.retry_after_s,
        )
        return too_many(over, fmt)
    return handler(context, account, params)


def respond(answer: Answer) -> Response:
    """:func:`worker.gateway.sendsms.to_response`, with lists and objects written as elements
    in XML."""
    if answer.fmt != "xml":
        return to_response(answer)
    headers = {
        "Content-Type": "text/xml; charset=UTF-8",
        "Cache-Control": "no-store",
        **SECURITY_HEADERS,
        **answer.headers,
    }
    return Response(render_xml(answer.reply), status_code=answer.http_status, headers=headers)


def render_xml(reply: Mapping[str, Any]) -> bytes:
    """``reply`` as ``<response>`` with one element per key (see the module docstring)."""
    inner = "".join(_element(name, value) for name, value in reply.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><response>{inner}</response>'.encode()


def _element(name: str, value: Any) -> str:
    if isinstance(value, list):
        item = ITEM_NAMES.get(name, "item")
        inner = "".join(_element(item, v) for v in value)
    elif isinstance(value, dict):
        inner = "".join(_element(k, v) for k, v in value.items())
    else:
        inner = html.escape(_NOT_XML.sub("\ufffd", str(value)), quote=False)
    return f"<{name}>{inner}</{name}>"
