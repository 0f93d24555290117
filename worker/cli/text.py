"""Plain-text views of the outcome store for operators (``smsq status``, ``smsq dlq list``),
and the two functions every line the CLI prints goes through: :func:`printable` for text and
:func:`dumps_json` for ``--json``.

Keys, reasons, reply texts and callback URLs come from producers and from SMS senders: printed
raw, ``\x1b]0;...\x07`` would retitle the operator's terminal, ``\x1b[2J`` clear it, ``\r``
or U+202E (right-to-left override) disguise a line. Every character Python does not call
printable (C0 and C1 controls, DEL, format characters such as the bidi controls, line and
paragraph separators, non-ASCII spaces, surrogates, unassigned code points) is shown as a
Python escape, and the backslash as ``\\``, so the shown form reads back exactly
(``shown.encode("latin-1", "backslashreplace").decode("unicode_escape")``).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import TYPE_CHECKING, Any

from producers.hours import HELD_FOR_HOURS
from worker.store.claims import iso


if TYPE_CHECKING:
    from producers.records import DeadLetter, MessageRecord
    from worker.store.audit import AuditEntry
    from worker.store.claims import Claim
    from worker.store.stats import Stats


_UNSAFE = re.compile(r"[^ -~]")
"""Anything but printable ASCII: checked one by one (most text never gets here)."""


def printable(text: object) -> str:
    """``text`` (or ``str(text)``) with every non-printable character and ``\\`` escaped."""
    value = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_escape, value.replace("\\", "\\\\"))


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char.isprintable():
        return char
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def dumps_json(data: Any, *, indent: int | None = None) -> str:
    """JSON for ``--json``: valid, UTF-8 kept readable, yet nothing a terminal would act on.

    ``json.dumps`` escapes only U+0000-U+001F; DEL, C1 controls and the bidi overrides would
    pass raw. Outside strings it writes only printable ASCII and (with ``indent``) newlines, so
    every other non-printable character is inside a string and becomes a ``\\uXXXX`` escape.
    """
    text = json.dumps(data, ensure_ascii=False, indent=indent)
    return _UNSAFE.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char == "\n" or char.isprintable():
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


def printable_lines(lines: list[str]) -> str:
    """One output line per item: a newline inside an item is data, shown as ``\\x0a``."""
    return "\n".join(printable(line) for line in lines)


RECIPIENT_LINES = 10
"""Recipients ``smsq status`` lists before it summarises (``--recipients`` lists them all)."""


def render_status(
    record: MessageRecord,
    *,
    claim: Claim | None = None,
    reconcile_interval_s: float = 0.0,
    all_recipients: bool = False,
) -> str:
    lines = [
        f"key:        {record.key}",
        f"state:      {record.state.value}"
        + (
            " (waiting for its rate-limit turn; nothing posted yet)"
            if record.waiting_for_rate_limit
            else ""
        ),
        f"lane:       {record.lane}",
        f"recipients: {record.recipients} ({record.segments} SMS part(s) each, {record.encoding})",
        f"created:    {record.created_at}",
        f"updated:    {record.updated_at}",
        f"attempts:   {record.attempts}",
    ]
    if record.next_attempt_at and record.held_for == HELD_FOR_HOURS:
        lines.append(
            f"held until {record.next_attempt_at} (a marketing message outside its sending "
            "hours in the recipients' time zones; nothing was sent)"
        )
    elif record.next_attempt_at:
        lines.append(
            f"next attempt at {record.next_attempt_at} (later retry round "
            f"{record.later_rounds}: AllMySMS was not reached, nothing was sent)"
        )
    if record.opted_out:
        lines.append(
            f"opted out: {len(record.opted_out)} recipient(s) dropped before the send (on the "
            "suppression list)"
        )
    if record.provider_status is not None:
        lines.append(f"provider:   {record.provider_status} {record.provider_text or ''}".rstrip())
    if record.campaign_id:
        lines.append(f"campaign:   {record.campaign_id}")
    if record.nb_sms is not None:
        lines.append(f"billed:     {record.nb_sms} SMS, {record.credits_used} credits")
    if record.error:
        lines.append(f"error:      {record.error}")
    if claim is not None:
        lines.append(_claim_line(claim, reconcile_interval_s))
    if record.parts:
        lines.extend(_part_lines(record))
    if record.sms_ids or record.receipts:
        d = record.delivery
        lines.append(
            f"delivery:   {d['delivered']} delivered, {d['failed']} failed, {d['pending']} pending"
        )
    rows = [
        *(
            f"  sent      {phone}  smsId {sms_id}{_receipt_note(record, phone)}"
            for phone, sms_id in record.sms_ids.items()
        ),
        *(f"  invalid   {phone}  (refused by AllMySMS)" for phone in record.invalid_numbers),
        *(
            f"  refused   {refused['phone']}  ({refused['field']}: {refused['reason']})"
            for refused in record.refused_numbers
        ),
    ]
    shown = rows if all_recipients else rows[:RECIPIENT_LINES]
    lines.extend(shown)
    if len(rows) > len(shown):
        lines.append(
            f"  ... {len(rows) - len(shown)} more recipient(s): "
            f"smsq status {shlex.quote(record.key)} --recipients"
        )
    if record.replies:
        lines.append(f"replies:    {len(record.replies)} (smsq replies {record.key!r})")
    lines.append("history:")
    for entry in record.history:
        extra = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("state", "at"))
        lines.append(f"  {entry['at']}  {entry['state']:<9}  {extra}".rstrip())
    return printable_lines(lines)


def _claim_line(claim: Claim, reconcile_interval_s: float) -> str:
    since = f" since {iso(claim.claimed_at)}" if claim.claimed_at is not None else ""
    if claim.alive:
        return f"worker:     {claim.worker} (alive), claimed{since}"
    silent = (
        f"silent since {iso(claim.last_beat_at)}"
        if claim.last_beat_at is not None
        else "silent (no heartbeat on record)"
    )
    outcome = "given back to its lane unsent" if claim.awaiting_turn else "settled as unknown"
    settle = claim.settle_at(reconcile_interval_s)
    if claim.live_workers == 0:
        when = "when a worker starts (none is running to settle it)"
    elif settle is None:
        when = "by the next worker's reconciler"
    else:
        when = f"at about {iso(settle)}"
    return f"worker:     {claim.worker} {silent}, claimed{since}; {outcome} {when}"


def _part_lines(record: MessageRecord) -> list[str]:
    counts: dict[str, int] = {}
    for part in record.parts:
        counts[part["state"]] = counts.get(part["state"], 0) + 1
    states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines = [f"parts:      {len(record.parts)} ({states})"]
    for number, part in enumerate(record.parts, 1):
        status = part.get("provider_status")
        detail = f"  AllMySMS {status}" if status is not None else ""
        error = f"  {part['error']}" if part.get("error") else ""
        lines.append(
            f"  part {number}  {part.get('key', '?')}  {part['state']}"
            f"  {part.get('recipients', '?')} recipient(s){detail}{error}"
        )
    return lines


def _receipt_note(record: MessageRecord, phone: str) -> str:
    receipt = record.receipts.get(phone)
    if receipt is None:
        return "  (no receipt yet)"
    when = receipt.get("reception_date") or receipt.get("received_at", "")
    return f"  {receipt['outcome']} ({receipt['status']}) {when}".rstrip()


def render_replies(record: MessageRecord) -> str:
    """Replies to one message, oldest first: when, from, text (for ``smsq replies``)."""
    if not record.replies:
        return "no replies"
    return printable_lines(
        [
            f"{r.get('reception_date') or r.get('received_at', '')}  {r['phone']}  {r['message']}"
            for r in record.replies
        ]
    )


def render_dead_letters(letters: list[DeadLetter]) -> str:
    if not letters:
        return "no dead letters"
    rows: list[tuple[str, ...]] = [("AT", "KIND", "STATE", "STATUS", "LANE", "KEY / ID", "REASON")]
    for letter in letters:
        # Escaped before the widths are measured, so the columns line up as shown.
        rows.append(
            tuple(
                printable(cell)
                for cell in (
                    letter.at,
                    letter.kind,
                    letter.state or "",
                    str(letter.provider_status or ""),
                    letter.lane or "",
                    letter.ref,
                    letter.reason,
                )
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:6], widths, strict=True))
        + "  "
        + row[6]
        for row in rows
    )


def render_dead_letter(letter: DeadLetter) -> str:
    """One dead letter that is not a message (``smsq dlq show``): every field, and a refused
    intake entry's payload (its first characters, as received), escaped on one line."""
    lines = [
        f"dead letter: {letter.dead_id}",
        f"kind:        {letter.kind}",
        f"state:       {letter.state or '-'}",
        f"at:          {letter.at}",
    ]
    for name, value in (
        ("key", letter.key),
        ("job", letter.job_id),
        ("lane", letter.lane),
        ("provider", letter.provider_status),
        ("message id", letter.message_id),
    ):
        if value is not None:
            lines.append(f"{name + ':':<12} {value}")
    lines.append(f"reason:      {letter.reason}")
    if letter.detail is not None:
        lines.append(f"payload:     {letter.payload_extent}, as received (escaped):")
        lines.append(f"  {letter.detail}")
    return printable_lines(lines)


def render_audit(entries: list[AuditEntry]) -> str:
    """``smsq audit``: one line per operator action, newest first (as given)."""
    if not entries:
        return "no operator action recorded"
    lines = []
    for entry in entries:
        if entry.counts:
            what = ", ".join(f"{kind} {n}" for kind, n in sorted(entry.counts.items()))
        else:
            more = entry.count - len(entry.targets)
            what = ", ".join(entry.targets) + (f" and {more} more" if more > 0 else "")
        line = f"{entry.at}  {entry.action}  by {entry.actor}  {entry.count}: {what}"
        if entry.erasure_id:
            line += f"  erasure {entry.erasure_id}"
        if entry.why:
            line += f"  why: {entry.why}"
        lines.append(line)
    return printable_lines(lines)


def render_credits(stats: Stats) -> str:
    """``credits: 340 (22 SMS to France), from getInfo 12.3 s ago``, or why it is unknown."""
    if stats.credits is None:
        return "credits: - (not known yet: see SMSQ_CREDITS_POLL_INTERVAL_S)"
    balance = stats.credits
    return (
        f"credits: {balance.credits} ({balance.fr_sms_left} SMS to France), "
        f"from {balance.source} {stats.credits_age_s or 0.0:.1f} s ago"
    )


def render_stats(stats: Stats) -> str:
    lines = ["LANE     DEPTH  OLDEST(s)  TAKEN  PAUSED"]
    for lane in stats.lanes:
        age = f"{lane.oldest_age_s:.1f}" if lane.oldest_age_s is not None else "-"
        lines.append(
            f"{lane.lane:<8} {lane.depth:>5}  {age:>9}  {lane.taken:>5}  {lane.paused or '-'}"
        )
    intake = stats.intake
    oldest = (
        f", the oldest seen waiting {intake.oldest_seen_s:.1f} s"
        if intake.oldest_seen_s is not None
        else ""
    )
    lines.append(f"intake: {intake.depth} waiting{oldest}, {intake.taken} taken by workers")
    lines.append(
        f"now: {stats.sending} sending, {stats.waiting_later} waiting for a later retry round, "
        f"{stats.dead_letters} dead letters waiting"
    )
    states = ", ".join(f"{k}={v}" for k, v in sorted(stats.states.items()))
    lines.append(f"ever reached (counters, not current): {states or '-'}")
    statuses = ", ".join(
        f"{code}/{lane}={n}" for (code, lane), n in sorted(stats.provider_statuses.items())
    )
    lines.append(f"provider statuses: {statuses or '-'}")
    mean = stats.latency_mean_ms
    lines.append(
        f"provider latency: mean {mean:.1f} ms over "
        f"{stats.counters.get('latency_count', 0)} requests"
        if mean is not None
        else "provider latency: -"
    )
    lines.append(render_credits(stats))
    lines.append(
        f"retries: {stats.counters.get('retries', 0)}   "
        f"requeued: {stats.counters.get('requeued', 0)}"
    )
    settled = {
        how: stats.counters.get(f"unknown_settled:{how}", 0)
        for how in ("receipt", "reply", "lookup")
    }
    lines.append(
        f"unknown settled from evidence: {sum(settled.values())} "
        f"({', '.join(f'{k}={v}' for k, v in settled.items())}), "
        f"{stats.counters.get('unknown_ambiguous', 0)} ambiguous matches left for a person"
    )
    return printable_lines(lines)
