"""The read-only page ``/audit``: operator actions from the audit stream, newest first (who,
what, when, why, how many), optionally of one action. No phone number or message text is ever
in the stream (see :mod:`worker.store.audit`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from worker.admin.auth import login_required
from worker.admin.context import context_of
from worker.admin.rendering import Notice, render
from worker.store.audit import ACTIONS, AuditLog


if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

AUDIT_LIMIT = 200
"""Rows on the audit page; ``smsq audit --since`` reaches older ones."""


@login_required
async def audit(request: Request, user: str) -> Response:
    action = request.query_params.get("action", "").strip()
    page = {"actions": ACTIONS, "action": action, "limit": AUDIT_LIMIT}
    if action and action not in ACTIONS:
        notice = Notice(ok=False, text=f"Filter action: must be one of {', '.join(ACTIONS)}")
        return render(request, "audit.html", {**page, "entries": [], "notice": notice}, status=400)
    admin = context_of(request)
    log = AuditLog(admin.connection, ttl_s=admin.settings.audit_ttl_s)
    entries = await run_in_threadpool(lambda: log.entries(action=action or None, limit=AUDIT_LIMIT))
    return render(request, "audit.html", {**page, "entries": entries})
