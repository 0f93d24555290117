"""A message split into several AllMySMS requests, read back as one: its state and outcome
are derived from its parts, each of which is an ordinary message with its own claim, job,
history and dead letter."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from producers.records import MessageRecord
from producers.states import TERMINAL_STATES, State


_FAILURE_ORDER = (State.UNKNOWN, State.FAILED, State.REJECTED, State.EXPIRED, State.CANCELLED)
"""When every part failed or was cancelled, but not in the same way, the one an operator must
look at first (a cancelled part only when nothing else went wrong)."""


def combined_state(states: list[State]) -> State:
    """The state of a split message, from the states of its parts.

    Not finished while a part is not terminal (``sending`` once any part has started). Once all
    are terminal: their common state if they agree; ``sent`` for sent and scheduled parts;
    ``partial`` when some went out and some did not; else the gravest failure.
    """
    if not states:
        return State.QUEUED
    if any(s not in TERMINAL_STATES for s in states):
        return State.QUEUED if all(s is State.QUEUED for s in states) else State.SENDING
    distinct = set(states)
    if len(distinct) == 1:
        return states[0]
    if distinct <= {State.SENT, State.SCHEDULED}:
        return State.SENT
    if distinct & {State.SENT, State.SCHEDULED, State.PARTIAL}:
        return State.PARTIAL
    return next(s for s in _FAILURE_ORDER if s in distinct)


def combine(parent: MessageRecord, parts: list[MessageRecord | None]) -> MessageRecord:
    """The parent record with its parts' outcomes folded in (a part whose record is gone
    counts as ``unknown``)."""
    present = [p for p in parts if p is not None]
    states = [p.state if p is not None else State.UNKNOWN for p in parts]
    sms_ids: dict[str, str] = {}
    invalid: list[str] = []
    for part in present:
        sms_ids.update(part.sms_ids)
        invalid.extend(part.invalid_numbers)
    statuses = {p.provider_status for p in present}
    summary: list[dict[str, Any]] = [
        {
            "key": p.key,
            "message_id": p.message_id,
            "state": p.state.value,
            "recipients": p.recipients,
            "provider_status": p.provider_status,
            "error": p.error,
        }
        if p is not None
        else {"state": State.UNKNOWN.value, "error": "part record is gone"}
        for p in parts
    ]
    return replace(
        parent,
        state=combined_state(states),
        updated_at=max([parent.updated_at, *(p.updated_at for p in present)]),
        attempts=sum(p.attempts for p in present),
        provider_status=statuses.pop() if len(statuses) == 1 else None,
        campaign_id=", ".join(sorted({p.campaign_id for p in present if p.campaign_id})) or None,
        sms_ids=sms_ids,
        invalid_numbers=invalid,
        credits_used=_total(p.credits_used for p in present),
        nb_sms=_total(p.nb_sms for p in present),
        nb_contacts=_total(p.nb_contacts for p in present),
        error=next((p.error for p in present if p.error), None),
        parts=summary,
    )


def _total(values: Any) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None
