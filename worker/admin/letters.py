"""The page of a dead letter that is not a message's: a refused job or a refused intake entry
(its reason, and the start of the entry as received, escaped)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from producers import keys
from producers.records import DeadLetter
from producers.store import decoded_hash
from worker.admin.auth import login_required
from worker.admin.context import AdminContext, context_of
from worker.admin.rendering import Notice, render


if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response


@login_required
async def dead_letter(request: Request, user: str) -> Response:
    return await render_dead_letter(request, request.query_params.get("id", ""))


async def render_dead_letter(
    request: Request, dead_id: str, notice: Notice | None = None, *, status: int = 200
) -> Response:
    """The page of a dead letter that is not a message's: a refused job or intake entry."""
    admin = context_of(request)
    letter = await run_in_threadpool(load_dead_letter, admin, dead_id)
    if letter is None:
        return render(
            request,
            "error.html",
            {
                "status": 404,
                "title": "No such dead letter",
                "text": f"No dead letter has the id {dead_id!r} (it was purged, or has expired).",
                "notice": notice,
            },
            status=404 if notice is None else status,
        )
    return render(
        request,
        "dead_letter.html",
        {
            "letter": letter,
            "notice": notice,
            "payload": visible(letter.detail) if letter.detail is not None else None,
            "extent": letter.payload_extent,
        },
        status=status,
    )


def load_dead_letter(admin: AdminContext, dead_id: str) -> DeadLetter | None:
    raw = admin.connection.hgetall(keys.dead_letter(dead_id)) if dead_id else None
    return DeadLetter.from_redis(decoded_hash(raw)) if raw else None


def visible(text: str) -> str:
    """``text`` with every character that is not printable (controls, bidi overrides) shown as
    a Python escape, and ``\\`` doubled, so a payload cannot disguise itself on the page."""
    return "".join(char if char.isprintable() and char != "\\" else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
