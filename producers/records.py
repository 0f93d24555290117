"""What the outcome store holds: a message record with its history, and dead letters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from producers.states import State


def utc_now_iso() -> str:
    """Now as ISO-8601 UTC with milliseconds, the format of every smsq timestamp."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _json(value: str | None, default: Any) -> Any:
    return json.loads(value) if value else default


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRecord:
    """One message as the outcome store has it."""

    key: str
    message_id: str
    state: State
    lane: str
    created_at: str
    updated_at: str
    request: dict[str, Any]
    recipients: int
    segments: int
    encoding: str
    refused_numbers: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0
    provider_status: int | None = None
    provider_text: str | None = None
    campaign_id: str | None = None
    sms_ids: dict[str, str] = field(default_factory=dict)
    invalid_numbers: list[str] = field(default_factory=list)
    opted_out: list[str] = field(default_factory=list)
    """Recipients a worker dropped just before the POST: they opted out while it waited."""
    credits_used: int | None = None
    nb_sms: int | None = None
    nb_contacts: int | None = None
    error: str | None = None
    expires_at: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    part_ids: list[str] = field(default_factory=list)
    """A split message: the message ids of its parts, in recipient order."""
    parts: list[dict[str, Any]] = field(default_factory=list)
    """A split message read through the store: each part's key, state and outcome."""
    parent: str | None = None
    """A part of a split message: the parent's message id."""
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Delivery receipts by phone: the one that counts (``status`` 1-5, ``outcome``,
    ``final``, ``status_text``, ``reception_date``, ``sms_id``, ``received_at``)."""
    replies: list[dict[str, Any]] = field(default_factory=list)
    """Replies (MO SMS) to this message, oldest first: ``sms_mo_id``, ``message`` (the
    person's text), ``phone``, ``reception_date``, ``received_at``."""
    waiting_for_rate_limit: bool = False
    """``sending`` but not posted yet: its worker waits for its turn under the global rate
    limit (given back to its lane unsent if that worker dies)."""
    next_attempt_at: str | None = None
    """``queued`` for a later retry round (AllMySMS was provably not reached): when the round is
    due (ISO 8601, UTC). None otherwise."""
    later_rounds: int = 0
    """Later retry rounds parked so far (each one a full send whose attempts all failed)."""
    held_for: str | None = None
    """``queued`` and held before any attempt until ``next_attempt_at``: ``sending_hours`` (a
    marketing message outside its window). None for a later retry round."""

    @property
    def delivery(self) -> dict[str, int]:
        """Per-recipient delivery summary from the receipts: ``delivered`` (status 1),
        ``failed`` (final 2, 4 or 5) and ``pending`` (accepted by AllMySMS, no final receipt
        yet: none, or 3 transmitted)."""
        delivered = sum(1 for r in self.receipts.values() if r.get("outcome") == "delivered")
        failed = sum(
            1 for r in self.receipts.values() if r.get("final") and r.get("outcome") != "delivered"
        )
        accepted = len(set(self.sms_ids) | set(self.receipts))
        return {
            "delivered": delivered,
            "failed": failed,
            "pending": max(0, accepted - delivered - failed),
        }

    @classmethod
    def from_redis(
        cls,
        raw: Mapping[str, str],
        history: list[str],
        *,
        receipts: Mapping[str, str] | None = None,
        replies: Mapping[str, str] | None = None,
    ) -> MessageRecord:
        expires = raw.get("expires_at")
        return cls(
            key=raw["key"],
            message_id=raw["message_id"],
            state=State(raw["state"]),
            lane=raw.get("lane", "default"),
            created_at=raw.get("created_at", ""),
            updated_at=raw.get("updated_at", ""),
            request=_json(raw.get("request"), {}),
            recipients=int(raw.get("recipients", "0")),
            segments=int(raw.get("segments", "1")),
            encoding=raw.get("encoding", "gsm7"),
            refused_numbers=_json(raw.get("refused_numbers"), []),
            attempts=int(raw.get("attempts", "0")),
            provider_status=_int(raw.get("provider_status")),
            provider_text=raw.get("provider_text") or None,
            campaign_id=raw.get("campaign_id") or None,
            sms_ids=_json(raw.get("sms_ids"), {}),
            invalid_numbers=_json(raw.get("invalid_numbers"), []),
            opted_out=_json(raw.get("opted_out"), []),
            credits_used=_int(raw.get("credits_used")),
            nb_sms=_int(raw.get("nb_sms")),
            nb_contacts=_int(raw.get("nb_contacts")),
            error=raw.get("error") or None,
            expires_at=float(expires) if expires else None,
            history=[json.loads(entry) for entry in history],
            part_ids=_json(raw.get("parts"), []),
            parent=raw.get("parent") or None,
            receipts=_by_phone(raw, receipts),
            replies=_with_phone(raw, replies),
            waiting_for_rate_limit=bool(raw.get("awaiting_turn")),
            next_attempt_at=(raw.get("next_attempt_at") or None)
            if raw["state"] == State.QUEUED.value
            else None,
            later_rounds=int(raw.get("later_rounds", "0")),
            held_for=(raw.get("held_for") or None) if raw["state"] == State.QUEUED.value else None,
        )

    def as_dict(self, *, include_request: bool = True) -> dict[str, Any]:
        """JSON-ready form, as ``smsq status --json`` prints it."""
        data: dict[str, Any] = {
            "key": self.key,
            "message_id": self.message_id,
            "state": self.state.value,
            "lane": self.lane,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "recipients": self.recipients,
            "segments": self.segments,
            "encoding": self.encoding,
            "refused_numbers": self.refused_numbers,
            "attempts": self.attempts,
            "provider_status": self.provider_status,
            "provider_text": self.provider_text,
            "campaign_id": self.campaign_id,
            "sms_ids": self.sms_ids,
            "invalid_numbers": self.invalid_numbers,
            "credits_used": self.credits_used,
            "nb_sms": self.nb_sms,
            "nb_contacts": self.nb_contacts,
            "error": self.error,
            "history": self.history,
        }
        if self.receipts or self.sms_ids:
            data["delivery"] = self.delivery
            data["receipts"] = self.receipts
        if self.replies:
            data["replies"] = self.replies
        if self.parts:
            data["parts"] = self.parts
        if self.parent:
            data["parent"] = self.parent
        if self.waiting_for_rate_limit:
            data["waiting_for_rate_limit"] = True
        if self.next_attempt_at:
            data["next_attempt_at"] = self.next_attempt_at
        if self.held_for:
            data["held_for"] = self.held_for
        if self.opted_out:
            data["opted_out"] = self.opted_out
        if self.later_rounds:
            data["later_rounds"] = self.later_rounds
        if include_request:
            data["request"] = self.request
        return data


def _by_phone(raw: Mapping[str, str], receipts: Mapping[str, str] | None) -> dict[str, Any]:
    """Receipts (stored by smsId) by phone, through the message's ``sms_ids``."""
    if not receipts:
        return {}
    sms_ids: dict[str, str] = _json(raw.get("sms_ids"), {})
    return {
        phone: json.loads(receipts[sms_id])
        for phone, sms_id in sorted(sms_ids.items())
        if sms_id in receipts
    }


def _with_phone(raw: Mapping[str, str], replies: Mapping[str, str] | None) -> list[Any]:
    """Replies oldest first, each with the phone its smsId was sent to; replies of a number
    purged since (its smsId gone from ``sms_ids``) are left out."""
    if not replies:
        return []
    phones = {sms_id: phone for phone, sms_id in _json(raw.get("sms_ids"), {}).items()}
    out = [
        {**reply, "phone": phones[reply.get("sms_id", "")]}
        for reply in map(json.loads, replies.values())
        if reply.get("sms_id") in phones
    ]
    return sorted(out, key=lambda r: (r.get("received_at", ""), r.get("sms_mo_id", "")))


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A terminal non-success an operator must see: a message, a refused job or intake entry."""

    dead_id: str
    kind: str
    """``message``, ``job`` (a job smsq refused to run) or ``intake`` (unreadable request)."""
    reason: str
    at: str
    state: str | None = None
    key: str | None = None
    message_id: str | None = None
    lane: str | None = None
    provider_status: int | None = None
    job_id: str | None = None
    detail: str | None = None
    """A refused intake entry: its first characters, as received."""
    size_bytes: int | None = None
    """A refused intake entry: its whole size (``detail`` may be only its start)."""

    @classmethod
    def from_redis(cls, raw: Mapping[str, str]) -> DeadLetter:
        return cls(
            dead_id=raw["dead_id"],
            kind=raw["kind"],
            reason=raw["reason"],
            at=raw["at"],
            state=raw.get("state") or None,
            key=raw.get("key") or None,
            message_id=raw.get("message_id") or None,
            lane=raw.get("lane") or None,
            provider_status=_int(raw.get("provider_status")),
            job_id=raw.get("job_id") or None,
            detail=raw.get("detail") or None,
            size_bytes=_int(raw.get("size_bytes")),
        )

    @property
    def ref(self) -> str:
        """What opens this dead letter (``smsq dlq show``, the admin page): a message's key;
        for a refused job or intake entry, which never became a message, the dead-letter id."""
        return self.key if self.kind == "message" and self.key else self.dead_id

    @property
    def payload_extent(self) -> str:
        """How much of a refused intake entry ``detail`` holds: all of it, or its start."""
        detail = self.detail or ""
        if self.size_bytes is None:
            return f"{len(detail):,} characters"
        if self.size_bytes > len(detail.encode()):
            return f"its first {len(detail):,} characters of {self.size_bytes:,} bytes"
        return f"{self.size_bytes:,} bytes"

    def as_dict(self) -> dict[str, Any]:
        return {
            "dead_id": self.dead_id,
            "kind": self.kind,
            "state": self.state,
            "reason": self.reason,
            "at": self.at,
            "key": self.key,
            "message_id": self.message_id,
            "lane": self.lane,
            "provider_status": self.provider_status,
            "job_id": self.job_id,
            "detail": self.detail,
            "size_bytes": self.size_bytes,
        }
