"""Operator actions, each a POST that first answers with an "are you sure?" page: requeue,
resolve or purge a dead letter, cancel a queued or scheduled message, pause or resume lanes.
What the desk would refuse is refused at once, never asked about. Only the second POST,
carrying ``confirm=1``, changes anything; both carry the session's CSRF token."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from starlette.concurrency import run_in_threadpool

from worker.admin.auth import login_required
from worker.admin.context import context_of
from worker.admin.letters import load_dead_letter, render_dead_letter
from worker.admin.offers import offers
from worker.admin.rendering import Notice, dead_letter_url, message_url, render
from worker.admin.sessions import checked_form, field
from worker.admin.views import (
    load_message,
    message_key,
    render_dead_letters,
    render_message,
    render_overview,
)
from worker.store.cancel import Canceller, cancel_refusal
from worker.store.control import Switch, lane_names
from worker.store.deadletters import Decision
from worker.store.ledger import Ledger


if TYPE_CHECKING:
    from starlette.datastructures import FormData
    from starlette.requests import Request
    from starlette.responses import Response

    from producers.records import MessageRecord
    from worker.admin.context import AdminContext
    from worker.allmysms.client import AllMySmsClient

log = structlog.get_logger()

TEXT_MAX_CHARS = 500
"""Longest reason or explanation kept in a message's history."""
OUTCOMES = {"sent": True, "not-sent": False}


@login_required
async def requeue(request: Request, user: str) -> Response:
    form = await checked_form(request)
    key = message_key(request)
    admin = context_of(request)
    record, refused = await _refused(request, key, "requeue")
    if refused is not None:
        return refused
    if not _confirmed(form):
        if record is None:
            return await render_message(request, key)
        plan, pauses = await run_in_threadpool(
            lambda: (
                admin.desk(user).requeue(key, actor=f"web:{user}", dry_run=True),
                Switch(admin.connection).paused(),
            )
        )
        pause = next((p for p in pauses if p.lane in ("*", record.lane)), None)
        when = (
            f"once lane {record.lane} is resumed (paused: {pause.reason})"
            if pause
            else "at its next pass"
        )
        return _confirm(
            request,
            "Requeue this message?",
            f"Message {key!r} is {record.state.value}. Requeueing puts each of its parts "
            f"AllMySMS provably did not send back in lane {record.lane} as a new job, and a "
            f"worker sends them {when}: {plan.detail}."
            if record.part_ids
            else f"Message {key!r} is {record.state.value}. Requeueing puts it back in "
            f"lane {record.lane} as a new job, and a worker sends it {when}.",
            message_url(key, "requeue"),
            message_url(key),
            {},
        )
    actor = f"web:{user}"
    decision = await run_in_threadpool(lambda: admin.desk(user).requeue(key, actor=actor))
    log.info(
        "admin.dead_letter.requeued"
        if decision.action == "requeued"
        else "admin.dead_letter.refused",
        key=key,
        by=actor,
        action=decision.action,
    )
    return await _decided(request, key, decision)


@login_required
async def resolve(request: Request, user: str) -> Response:
    form = await checked_form(request)
    key = message_key(request)
    admin = context_of(request)
    # Before the form's fields: whatever they say, the desk would refuse.
    record, refused = await _refused(request, key, "resolve")
    if refused is not None:
        return refused
    outcome, why = field(form, "outcome"), field(form, "why")
    values = {"outcome": outcome, "why": why}
    problem = (
        "Say what happened: sent or not sent."
        if outcome not in OUTCOMES
        else "Say how you know (why) before resolving."
        if not why
        else f"Keep the explanation under {TEXT_MAX_CHARS} characters."
        if len(why) > TEXT_MAX_CHARS
        else None
    )
    if problem:
        return await render_message(
            request, key, Notice(ok=False, text=problem), status=400, form=values
        )
    if not _confirmed(form):
        if record is None:
            return await render_message(request, key)
        verdict = "was sent to its recipients" if OUTCOMES[outcome] else "was NOT sent"
        return _confirm(
            request,
            "Resolve this message?",
            f"Record that message {key!r} {verdict}, because: {why}",
            message_url(key, "resolve"),
            message_url(key),
            values,
        )
    actor = f"web:{user}"
    decision = await run_in_threadpool(
        lambda: admin.desk(user).resolve(key, sent=OUTCOMES[outcome], actor=actor, why=why)
    )
    log.info(
        "admin.dead_letter.resolved"
        if decision.action == "resolved"
        else "admin.dead_letter.refused",
        key=key,
        by=actor,
        action=decision.action,
    )
    return await _decided(request, key, decision)


@login_required
async def purge(request: Request, user: str) -> Response:
    """Forget a message's dead letter; the message record stays as it is."""
    form = await checked_form(request)
    key = message_key(request)
    admin = context_of(request)
    record, refused = await _refused(request, key, "purge")
    if refused is not None:
        return refused
    if not _confirmed(form):
        if record is None:
            return await render_message(request, key)
        return _confirm(
            request,
            "Purge this dead letter?",
            f"Message {key!r} leaves the dead-letter list. Its record stays "
            f"{record.state.value} until it expires; nothing is sent.",
            message_url(key, "purge"),
            message_url(key),
            {},
        )
    decision = await run_in_threadpool(lambda: admin.desk(user).purge(key, actor=f"web:{user}"))
    _log_purge(decision, key, user)
    return await _decided(request, key, decision)


@login_required
async def purge_letter(request: Request, user: str) -> Response:
    """Forget a refused job's or intake entry's dead letter, then show the list."""
    form = await checked_form(request)
    dead_id = request.query_params.get("id", "")
    admin = context_of(request)
    letter = await run_in_threadpool(load_dead_letter, admin, dead_id)
    if letter is None:
        return await render_dead_letter(request, dead_id)
    if not _confirmed(form):
        return _confirm(
            request,
            "Purge this dead letter?",
            f"Dead letter {dead_id!r} ({letter.kind}: {letter.reason}) leaves the dead-letter "
            "list; nothing is sent.",
            dead_letter_url(dead_id, "purge"),
            dead_letter_url(dead_id),
            {},
        )
    decision = await run_in_threadpool(
        lambda: admin.desk(user).purge_dead_id(dead_id, actor=f"web:{user}")
    )
    _log_purge(decision, dead_id, user)
    ok = decision.action != "refused"
    notice = Notice(ok=ok, text=f"{decision.action.capitalize()}: {dead_id} ({decision.detail})")
    return await render_dead_letters(request, user, notice, status=200 if ok else 409)


def _log_purge(decision: Decision, ref: str, user: str) -> None:
    log.info(
        "admin.dead_letter.purged" if decision.action == "purged" else "admin.dead_letter.refused",
        key=ref,
        by=f"web:{user}",
        action=decision.action,
    )


@login_required
async def cancel(request: Request, user: str) -> Response:
    """Cancel a queued message (or a split one's queued and scheduled parts), or a scheduled
    one through AllMySMS's deleteCampaign (only its OK makes it cancelled), with a reason."""
    form = await checked_form(request)
    key = message_key(request)
    admin = context_of(request)
    record, _ = await run_in_threadpool(load_message, admin, key)
    if record is None:
        return await render_message(request, key)
    refusal = cancel_refusal(record)
    if refusal is not None:
        log.info("admin.message.cancel_refused", key=key, why=refusal)
        return await _decided(request, key, Decision(record.key, "refused", refusal))
    why = field(form, "why")
    problem = (
        "Say why you cancel it (it is recorded)."
        if not why
        else f"Keep the reason under {TEXT_MAX_CHARS} characters."
        if len(why) > TEXT_MAX_CHARS
        else None
    )
    if problem:
        return await render_message(
            request, key, Notice(ok=False, text=problem), status=400, form={"why": why}
        )
    actor = f"web:{user}"
    if not _confirmed(form):
        plan = await run_in_threadpool(
            lambda: _canceller(admin, user, []).cancel(key, actor=actor, why=why, dry_run=True)
        )
        return _confirm(
            request,
            "Cancel this message?",
            f"Message {key!r} is {record.state.value}: {plan.detail}. It is never sent. "
            f"Because: {why}",
            message_url(key, "cancel"),
            message_url(key),
            {"why": why},
        )
    decision = await run_in_threadpool(lambda: _cancel(admin, user, key, actor=actor, why=why))
    log.info(
        "admin.message.cancelled"
        if decision.action == "cancelled"
        else "admin.message.cancel_refused",
        key=key,
        by=actor,
        action=decision.action,
    )
    return await _decided(request, key, decision)


def _canceller(admin: AdminContext, user: str, made: list[AllMySmsClient]) -> Canceller:
    """A canceller naming the web user whose AllMySMS client (for a scheduled message, when
    ``ALLMYSMS_*`` is set) is made on demand and appended to ``made``, for the caller to close
    (a dry run makes none)."""
    ledger = Ledger(
        admin.connection,
        ttl_s=admin.settings.producer.outcome_ttl_s,
        worker_name=f"web {user}",
        barrier=admin.barrier,
    )

    deleter = None
    if admin.settings.login and admin.settings.api_key.reveal():

        def provider() -> AllMySmsClient:
            from worker.allmysms.client import AllMySmsClient

            made.append(AllMySmsClient.from_settings(admin.settings))
            return made[-1]

        deleter = provider
    return Canceller(
        admin.connection, ledger, audit_ttl_s=admin.settings.audit_ttl_s, deleter=deleter
    )


def _cancel(admin: AdminContext, user: str, key: str, *, actor: str, why: str) -> Decision:
    made: list[AllMySmsClient] = []
    try:
        return _canceller(admin, user, made).cancel(key, actor=actor, why=why)
    finally:
        for client in made:
            client.close()


@login_required
async def pause(request: Request, user: str) -> Response:
    form = await checked_form(request)
    lane, reason = field(form, "lane"), field(form, "reason") or f"paused on the web by {user}"
    try:
        name = lane_names(lane)
    except ValueError:
        return await render_overview(request, Notice(ok=False, text="No such lane."), status=400)
    if len(reason) > TEXT_MAX_CHARS:
        return await render_overview(
            request,
            Notice(ok=False, text=f"Keep the reason under {TEXT_MAX_CHARS} characters."),
            status=400,
        )
    what = "every lane" if name == "*" else f"lane {name}"
    if not _confirmed(form):
        return _confirm(
            request,
            f"Pause {what}?",
            f"Workers stop taking messages from {what} within one pass; sends in "
            f"flight finish and nothing queued is lost.",
            "/pause",
            "/",
            {"lane": lane},
            inputs={"reason": reason},
        )
    switch = context_of(request).switch()
    done = await run_in_threadpool(lambda: switch.pause(name, reason=reason, by=f"web:{user}"))
    log.info("admin.lane.paused", lane=done.lane, by=done.by)
    return await render_overview(request, Notice(ok=True, text=f"Paused {what}: {reason}"))


@login_required
async def resume(request: Request, user: str) -> Response:
    form = await checked_form(request)
    lane = field(form, "lane")
    try:
        # "all" lifts every pause, per lane too, not only the all-lanes one.
        name = None if lane == "all" else lane_names(lane)
    except ValueError:
        return await render_overview(request, Notice(ok=False, text="No such lane."), status=400)
    what = "every lane" if name is None else f"lane {name}"
    if not _confirmed(form):
        return _confirm(
            request,
            f"Resume {what}?",
            f"Workers start sending from {what} again at their next pass.",
            "/resume",
            "/",
            {"lane": lane},
        )
    switch = context_of(request).switch()
    lifted = await run_in_threadpool(lambda: switch.resume(name, by=f"web:{user}"))
    log.info("admin.lane.resumed", lanes=lifted, by=f"web:{user}")
    text = (
        f"Resumed: {', '.join('every lane' if n == '*' else n for n in lifted)}."
        if lifted
        else f"Nothing to resume: {what} was not paused."
    )
    return await render_overview(request, Notice(ok=True, text=text))


async def _refused(
    request: Request, key: str, action: str
) -> tuple[MessageRecord | None, Response | None]:
    """The message, and the refusal page when its page does not offer ``action``: a form
    posted anyway is refused with the page's reason, before any confirmation. The desk checks
    again when it acts (the state may change in between)."""
    record, letter = await run_in_threadpool(load_message, context_of(request), key)
    if record is None:
        return None, None
    why_not = offers(record, letter)[action].why_not
    if why_not is None:
        return record, None
    log.info("admin.dead_letter.refused", key=key, action=action, why=why_not)
    decision = Decision(record.key, "refused", why_not)
    return record, await _decided(request, key, decision)


def _confirmed(form: FormData) -> bool:
    return field(form, "confirm") == "1"


def _confirm(
    request: Request,
    title: str,
    question: str,
    action: str,
    cancel: str,
    fields: dict[str, str],
    *,
    inputs: dict[str, str] | None = None,
) -> Response:
    """The "are you sure?" page: ``fields`` travel hidden, ``inputs`` can still be edited."""
    return render(
        request,
        "confirm.html",
        {
            "title": title,
            "question": question,
            "action": action,
            "cancel": cancel,
            "fields": fields,
            "inputs": inputs or {},
        },
    )


async def _decided(request: Request, key: str, decision: Decision) -> Response:
    ok = decision.action != "refused"
    text = f"{decision.action.capitalize()}: {decision.detail}"
    return await render_message(request, key, Notice(ok=ok, text=text), status=200 if ok else 409)
