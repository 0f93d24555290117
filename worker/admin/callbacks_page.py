"""The page ``/callbacks``: dead callbacks (events smsq gave up delivering to a producer), newest
first, and a form to send the chosen ones again (``smsq callbacks --requeue`` on the web: same
event id, fresh attempt budget, one audit entry ``callbacks.requeue`` by ``web:<user>``).

A row shows the event, its message key, the producer, the destination host (never the whole
URL: a query may carry a token) and why it died; never the event's numbers or reply text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog
from starlette.concurrency import run_in_threadpool

from worker.admin.auth import login_required
from worker.admin.context import context_of
from worker.admin.rendering import Notice, render
from worker.admin.sessions import checked_form, field
from worker.callbacks.outbox import DeadCallback, dead_callbacks
from worker.callbacks.requeue import CallbackRequeue, DeadQuery


if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

log = structlog.get_logger()

SHOWN_MAX = 200
"""Rows on the page; ``smsq callbacks --dead`` lists more."""
REASON_MAX_CHARS = 500


def _row(dead: DeadCallback) -> dict[str, Any]:
    try:
        host = urlsplit(dead.url).hostname or "?"
    except ValueError:
        host = "?"
    return {
        "event_id": dead.event_id,
        "event": str(dead.event.get("event", "")),
        "key": str(dead.event.get("key", "")),
        "producer": dead.producer,
        "host": host,
        "reason": dead.reason,
        "attempts": dead.attempts,
        "at": datetime.fromtimestamp(dead.at, UTC).isoformat(timespec="seconds"),
    }


async def _page(
    request: Request, notice: Notice | None = None, *, status: int = 200, why: str = ""
) -> Response:
    admin = context_of(request)
    rows = await run_in_threadpool(lambda: dead_callbacks(admin.connection, limit=SHOWN_MAX))
    page = {"rows": [_row(d) for d in rows], "notice": notice, "why": why, "limit": SHOWN_MAX}
    return render(request, "callbacks.html", page, status=status)


@login_required
async def callbacks(request: Request, user: str) -> Response:
    return await _page(request)


@login_required
async def requeue(request: Request, user: str) -> Response:
    """Send the ticked dead callbacks again, with a reason."""
    form = await checked_form(request)
    chosen = [str(v) for v in form.getlist("event_id") if str(v).strip()]
    why = field(form, "why")
    if not chosen:
        return await _page(
            request, Notice(ok=False, text="Tick the callbacks to send again."), status=400, why=why
        )
    if not why or len(why) > REASON_MAX_CHARS:
        text = (
            "Say why (it is recorded)."
            if not why
            else f"Keep the reason under {REASON_MAX_CHARS} characters."
        )
        return await _page(request, Notice(ok=False, text=text), status=400, why=why)
    admin = context_of(request)
    desk = CallbackRequeue(admin.connection, audit_ttl_s=admin.settings.audit_ttl_s)
    done = await run_in_threadpool(
        lambda: desk.requeue(chosen, DeadQuery(), actor=f"web:{user}", why=why)
    )
    moved = [r.event_id for r in done if r.action == "requeued"]
    refused = [r for r in done if r.action != "requeued"]
    log.info("admin.callbacks.requeued", count=len(moved), refused=len(refused), by=f"web:{user}")
    text = f"Sent again: {len(moved)}." + (
        f" Not dead any more (requeued, erased or expired): {len(refused)}." if refused else ""
    )
    return await _page(request, Notice(ok=not refused, text=text))
