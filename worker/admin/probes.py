"""Endpoints for machines, without login: ``/metrics`` for Prometheus and ``/healthz``.

``/metrics`` holds counts only (no phone number, text or key), but it still tells anyone who can
read it how much the business sends: serve it on loopback or a private network, never publicly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from worker.admin.context import context_of
from worker.admin.metrics import CONTENT_TYPE, render


if TYPE_CHECKING:
    from starlette.requests import Request


async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(render, context_of(request).connection)
    return Response(body, media_type=CONTENT_TYPE)


async def healthz(request: Request) -> Response:
    connection = context_of(request).connection
    try:
        ok = bool(await run_in_threadpool(connection.ping))
    except (RedisError, OSError):
        ok = False
    return JSONResponse({"ok": ok}, status_code=200 if ok else 503)
