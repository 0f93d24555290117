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

    @classmethod
    def from_redis(cls, raw: Mapping[str, str], history: list[str]) -> MessageRecord:
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
            credits_used=_int(raw.get("credits_used")),
            nb_sms=_int(raw.get("nb_sms")),
            nb_contacts=_int(raw.get("nb_contacts")),
            error=raw.get("error") or None,
            expires_at=float(expires) if expires else None,
            history=[json.loads(entry) for entry in history],
            part_ids=_json(raw.get("parts"), []),
            parent=raw.get("parent") or None,
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
        if self.parts:
            data["parts"] = self.parts
        if self.parent:
            data["parent"] = self.parent
        if include_request:
            data["request"] = self.request
        return data


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
        )

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
        }
