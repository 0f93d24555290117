"""The read-only page ``/workers``: each worker process seen in the last day (alive, stopped or
dead), its host, lanes, send slots busy, sends done, version and last heartbeat."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from worker.admin.auth import login_required
from worker.admin.context import context_of
from worker.admin.rendering import render
from worker.store.workers import board


if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response


@login_required
async def workers(request: Request, user: str) -> Response:
    admin = context_of(request)
    views = await run_in_threadpool(board, admin.connection)
    now = time.time()
    rows = [view.as_dict(now) for view in views]
    return render(request, "workers.html", {"workers": rows})
