"""The page ``/optouts``: the suppression list by hand (how many entries; check, add or remove
one number, with a reason). Numbers are typed in a POSTed form, never in a URL (access logs),
and never shown back in clear: the page names a number by its keyed hash. Each change is an
audit entry (``optout.add`` / ``optout.remove``, by ``web:<user>``, a count, no number)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from starlette.concurrency import run_in_threadpool

from producers.errors import PhoneError
from producers.optouts import OptOuts, Source
from producers.phones import normalise_phone
from worker.admin.auth import login_required
from worker.admin.context import context_of
from worker.admin.rendering import Notice, render
from worker.admin.sessions import checked_form, field
from worker.store.audit import OPTOUT_ADD, OPTOUT_REMOVE, AuditEntry, AuditLog


if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from worker.admin.context import AdminContext

log = structlog.get_logger()

REASON_MAX_CHARS = 200


def _optouts(admin: AdminContext) -> OptOuts:
    return OptOuts(admin.connection, key=admin.settings.producer.optout_key, barrier=admin.barrier)


async def _page(
    request: Request, notice: Notice | None = None, *, status: int = 200, why: str = ""
) -> Response:
    admin = context_of(request)
    count = await run_in_threadpool(_optouts(admin).count)
    page = {"count": count, "notice": notice, "why": why}
    return render(request, "optouts.html", page, status=status)


@login_required
async def optouts(request: Request, user: str) -> Response:
    return await _page(request)


@login_required
async def change(request: Request, user: str) -> Response:
    """Check, add or remove the posted number (``action``: check, add, remove)."""
    form = await checked_form(request)
    action, raw, why = field(form, "action"), field(form, "phone"), field(form, "why")
    admin = context_of(request)
    if action not in ("check", "add", "remove"):
        return await _page(request, Notice(ok=False, text="No such action."), status=400)
    try:
        phone = normalise_phone(raw, admin.settings.producer.default_country)
    except PhoneError as exc:
        return await _page(
            request, Notice(ok=False, text=f"Phone: {exc.reason}"), status=400, why=why
        )
    optouts = _optouts(admin)
    digest = optouts.digest(phone)
    if action == "check":
        entry = await run_in_threadpool(optouts.get, phone)
        text = (
            f"{digest}: not on the list."
            if entry is None
            else f"{digest}: opted out {entry.at} ({entry.source}{': ' if entry.comment else ''}"
            f"{entry.comment})."
        )
        return await _page(request, Notice(ok=True, text=text))
    if not why or len(why) > REASON_MAX_CHARS:
        problem = (
            "Say why (it is recorded)."
            if not why
            else f"Keep the reason under {REASON_MAX_CHARS} characters."
        )
        return await _page(request, Notice(ok=False, text=problem), status=400, why=why)
    actor = f"web:{user}"
    if action == "add":
        done = await run_in_threadpool(
            lambda: optouts.add(phone, source=Source.MANUAL, by=actor, comment=why)
        )
        text = f"{digest}: added." if done else f"{digest}: already on the list."
    else:
        done = await run_in_threadpool(optouts.remove, phone)
        text = f"{digest}: removed." if done else f"{digest}: was not on the list."
    if done:
        audit = AuditLog(admin.connection, ttl_s=admin.settings.audit_ttl_s)
        name = OPTOUT_ADD if action == "add" else OPTOUT_REMOVE
        record = AuditEntry(action=name, actor=actor, why=why, count=1)
        await run_in_threadpool(audit.record, record)
        log.info("admin.optout.changed", action=action, by=actor)
    return await _page(request, Notice(ok=True, text=text))
