"""The read-only pages: overview (lanes, pauses, counters), dead letters, one message."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from producers import keys
from producers.contract import LANE_ORDER
from producers.errors import BadFilterError, InvalidInputError
from producers.records import DeadLetter, MessageRecord
from producers.store import MessageStore, decoded_hash
from worker.admin.auth import login_required
from worker.admin.context import AdminContext, context_of
from worker.admin.offers import offers
from worker.admin.recipients import page_count, page_of, parse_page, recipients
from worker.admin.rendering import Notice, render
from worker.send.long_wait import long_waits
from worker.store.cancel import cancel_refusal
from worker.store.control import Switch
from worker.store.deadletters import Query
from worker.store.stats import collect


if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.requests import Request
    from starlette.responses import Response

DEAD_LIMIT = 200
"""Rows on the dead-letters page; narrow the filters to see older ones."""
KINDS = ("message", "job", "intake")
STATES = ("rejected", "unknown", "expired", "failed", "refused")


@login_required
async def overview(request: Request, user: str) -> Response:
    return await render_overview(request)


async def render_overview(
    request: Request, notice: Notice | None = None, *, status: int = 200
) -> Response:
    admin = context_of(request)
    stats, pauses = await run_in_threadpool(
        lambda: (collect(admin.connection), Switch(admin.connection).paused())
    )
    return render(
        request,
        "overview.html",
        {
            "stats": stats,
            "pauses": pauses,
            "lanes": [lane.value for lane in LANE_ORDER],
            "paused_lanes": {p.lane for p in pauses},
            "long_waits": long_waits(stats, admin.settings.long_wait_s),
            "notice": notice,
            "provider_statuses": sorted(stats.provider_statuses.items()),
        },
        status=status,
    )


@login_required
async def dead_letters(request: Request, user: str) -> Response:
    return await render_dead_letters(request, user)


async def render_dead_letters(
    request: Request, user: str, notice: Notice | None = None, *, status: int = 200
) -> Response:
    params = request.query_params
    filters = {
        name: params.get(name, "").strip()
        for name in ("reason", "status", "lane", "since", "until", "campaign", "kind", "state")
    }
    page = {
        "filters": filters,
        "limit": DEAD_LIMIT,
        "kinds": KINDS,
        "states": STATES,
        "lanes": [lane.value for lane in LANE_ORDER],
    }
    try:
        query = parse_query(filters)
    except BadFilterError as exc:
        notice = Notice(ok=False, text=f"Filter {exc.field}: {exc.reason}")
        return render(request, "dead.html", {**page, "rows": [], "notice": notice}, status=400)
    desk = context_of(request).desk(user)
    rows = await run_in_threadpool(desk.list, query, limit=DEAD_LIMIT)
    return render(
        request,
        "dead.html",
        {**page, "rows": [letter for letter, _ in rows], "notice": notice},
        status=status,
    )


def parse_query(filters: Mapping[str, str]) -> Query:
    """Turn the page's filter fields into a desk query; empty fields do not filter.

    Raises:
        BadFilterError: a field holds a value no dead letter could have.
    """
    status = filters["status"]
    if status and not (status.isascii() and status.isdigit()):
        raise BadFilterError("status", "must be an AllMySMS status number such as 114")
    for name, allowed in (
        ("lane", [lane.value for lane in LANE_ORDER]),
        ("kind", KINDS),
        ("state", STATES),
    ):
        if filters[name] and filters[name] not in allowed:
            raise BadFilterError(name, f"must be one of {', '.join(allowed)}")
    return Query(
        reason=filters["reason"] or None,
        provider_status=int(status) if status else None,
        lane=filters["lane"] or None,
        since=_moment(filters, "since"),
        until=_moment(filters, "until"),
        campaign=filters["campaign"] or None,
        kind=filters["kind"] or None,
        state=filters["state"] or None,
    )


def _moment(filters: Mapping[str, str], name: str) -> datetime | None:
    text = filters[name]
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadFilterError(name, "must be an ISO-8601 time such as 2026-11-25T10:00") from None
    # Dead letters carry UTC times; a time typed without an offset is read as UTC too.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@login_required
async def message(request: Request, user: str) -> Response:
    return await render_message(request, message_key(request))


def message_key(request: Request) -> str:
    """The key from the path, or from ``?key=`` for keys a path cannot carry."""
    key: str = request.path_params.get("key", "")
    return key or request.query_params.get("key", "")


async def render_message(
    request: Request,
    key: str,
    notice: Notice | None = None,
    *,
    status: int = 200,
    form: Mapping[str, str] | None = None,
) -> Response:
    admin = context_of(request)
    record, letter = await run_in_threadpool(load_message, admin, key)
    parent = await run_in_threadpool(parent_key, admin, record) if record else None
    if record is None:
        return render(
            request,
            "error.html",
            {
                "status": 404,
                "title": "No such message",
                "text": f"No message has the key {key!r} (or it has expired).",
                "notice": notice,
            },
            status=404 if notice is None else status,
        )
    rows = recipients(record)
    try:
        page = parse_page(request.query_params.get("page"), page_count(len(rows)))
    except InvalidInputError as exc:
        # The page still shows, from its first page of recipients, with what was wrong.
        page, notice, status = 1, Notice(ok=False, text=f"{exc.field}: {exc.reason}"), 400
    return render(
        request,
        "message.html",
        {
            "record": record,
            "letter": letter,
            "parent": parent,
            "notice": notice,
            "form": form or {},
            "offers": offers(record, letter),
            "cancellable": cancel_refusal(record) is None,
            "recipients": page_of(rows, page),
            "delivery": record.delivery if record.sms_ids or record.receipts else None,
            "request_json": json.dumps(_shown_request(record), ensure_ascii=False, indent=2),
            "history": [_history_row(entry) for entry in record.history],
        },
        status=status,
    )


def _shown_request(record: MessageRecord) -> dict[str, Any]:
    """The request without its recipient list, which the Recipients table pages through."""
    shown = dict(record.request)
    if "to" in shown:
        count = len(shown["to"]) if isinstance(shown["to"], list) else 1
        shown["to"] = f"{count:,} recipient(s), listed under Recipients"
    return shown


def parent_key(admin: AdminContext, record: MessageRecord) -> str | None:
    """A part's parent message key (None for a message that is not a part, or whose parent
    record is gone)."""
    if not record.parent:
        return None
    parent = MessageStore(admin.connection).get_by_id(record.parent)
    return parent.key if parent else None


def load_message(admin: AdminContext, key: str) -> tuple[MessageRecord | None, DeadLetter | None]:
    record = MessageStore(admin.connection).get(key)
    if record is None:
        return None, None
    raw = admin.connection.hgetall(keys.dead_letter(record.message_id))
    letter = DeadLetter.from_redis(decoded_hash(raw)) if raw else None
    return record, letter


def _history_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    details = ", ".join(
        f"{k}={v}" for k, v in entry.items() if k not in ("state", "at", "reason", "by")
    )
    return {
        "at": entry.get("at", ""),
        "state": entry.get("state", ""),
        "reason": entry.get("reason", ""),
        "by": entry.get("by", ""),
        "details": details,
    }
