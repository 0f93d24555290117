"""The page ``/campaigns?name=NAME``: one campaign's progress (``smsq campaign NAME``):
recipients by state with a progress bar, delivery from the receipts, opt-outs, its start, its
rate so far and when it should end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from worker.admin.auth import login_required
from worker.admin.context import context_of
from worker.admin.rendering import Notice, render
from worker.store.campaigns import progress


if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

NAME_MAX_CHARS = 100


@login_required
async def campaign(request: Request, user: str) -> Response:
    name = request.query_params.get("name", "").strip()
    if not name:
        return render(request, "campaign.html", {"name": "", "view": None})
    if len(name) > NAME_MAX_CHARS:
        notice = Notice(ok=False, text=f"A campaign name has at most {NAME_MAX_CHARS} characters.")
        return render(
            request, "campaign.html", {"name": "", "view": None, "notice": notice}, status=400
        )
    admin = context_of(request)
    view = await run_in_threadpool(progress, admin.connection, name)
    if not view.messages:
        notice = Notice(ok=False, text=f"No message in campaign {name!r}.")
        return render(
            request, "campaign.html", {"name": name, "view": None, "notice": notice}, status=404
        )
    return render(request, "campaign.html", {"name": name, "view": view.as_dict()})
