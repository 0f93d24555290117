"""HTML rendering: the Jinja2 environment (autoescaped), its filters, and banners."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from worker.admin.sessions import CSRF_FIELD, csrf_token, shown_user


if TYPE_CHECKING:
    from starlette.requests import Request

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class Notice:
    """A banner at the top of a page: what an action did, or why it was refused."""

    ok: bool
    text: str


def message_url(key: str, action: str = "", *, page: int | None = None) -> str:
    """The page (or an action) of the message with idempotency key ``key``, which is any text;
    ``page``: that page of its recipients.

    Keys that cannot travel as one path segment go in the query string instead: browsers
    collapse ``.`` and ``..`` segments, and a newline never matches a route.
    """
    suffix = f"/{action}" if action else ""
    if key in (".", "..") or "\n" in key:
        url = f"/messages/{suffix}?key={quote(key, safe='')}"
    else:
        url = f"/messages/{quote(key, safe='')}{suffix}"
    if page is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}page={page}"


def dead_letter_url(dead_id: str, action: str = "") -> str:
    """The page (or an action) of the dead letter ``dead_id`` that is not a message's (a
    refused job or intake entry). The id goes in the query string: a foreign job id in it may
    hold any text."""
    return f"/dead/letter{f'/{action}' if action else ''}?id={quote(dead_id, safe='')}"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["message_url"] = message_url
_env.filters["dead_letter_url"] = dead_letter_url
_env.filters["age"] = age


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    bare: bool = False,
) -> HTMLResponse:
    """Render a template with the user, the CSRF token and an optional ``notice``.

    Args:
        bare: leave the session alone (error pages, which may run before the session exists).
    """
    values: dict[str, Any] = {
        "user": None if bare else shown_user(request),
        "csrf": "" if bare else csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "notice": None,
        **(context or {}),
    }
    html = _env.get_template(name).render(values)
    return HTMLResponse(html, status_code=status, headers=headers)
