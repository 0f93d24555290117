"""``smsq export --phone NUMBER``: everything smsq holds about one person (GDPR Art. 15).

The counterpart of :mod:`worker.store.purge`, over the same places: every message sent to the
number (its key, states and history, the text as that person got it, with their own params;
their receipt and replies; never the other recipients' numbers or params), intake entries and
intake dead letters that mention the number (their keys and reasons: their text may name other
people), how many callback events waiting or dead mention it, and the suppression-list entry.
It reads only: nothing is changed, and one audit entry (``export``, a count, no number) records
who asked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.contract import PLACEHOLDER_PATTERN
from producers.optouts import OptOuts
from producers.phones import normalise_phone
from producers.store import MessageStore, decoded, decoded_hash
from worker.settings import AUDIT_TTL_S
from worker.store.audit import EXPORT, AuditEntry, AuditLog
from worker.store.purge import SCAN_COUNT, mentions


if TYPE_CHECKING:
    from redis import Redis

    from producers.records import MessageRecord


class Exporter:
    def __init__(
        self,
        connection: Redis,
        *,
        default_region: str,
        optout_key: bytes | None = None,
        audit_ttl_s: int = AUDIT_TTL_S,
    ) -> None:
        self._redis = connection
        self._region = default_region
        self._store = MessageStore(connection)
        self._optouts = OptOuts(connection, key=optout_key)
        self._audit = AuditLog(connection, ttl_s=audit_ttl_s)

    def export(self, phone: str, *, actor: str, why: str = "") -> dict[str, Any]:
        """What smsq holds about ``phone`` (any format smsq accepts), as one JSON object.

        Raises:
            PhoneError: ``phone`` is not a number smsq could ever have stored.
        """
        target = normalise_phone(phone, self._region)
        messages = [self._message(r, target) for r in self._records(target)]
        intake = self._intake(target)
        dead_intake = self._dead_intake(target)
        callbacks = self._callbacks(target)
        optout = self._optouts.get(target)
        found = len(messages) + len(intake) + len(dead_intake) + sum(callbacks.values())
        self._audit.record(
            AuditEntry(action=EXPORT, actor=actor, why=why, count=found + (optout is not None))
        )
        return {
            "phone": target,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "messages": messages,
            "intake_entries": intake,
            "intake_dead_letters": dead_intake,
            "callback_events": callbacks,
            "opt_out": None
            if optout is None
            else {"at": optout.at, "source": optout.source, "comment": optout.comment},
        }

    def _records(self, target: str) -> list[MessageRecord]:
        found: list[MessageRecord] = []
        for raw_key in self._redis.scan_iter(match=keys.message("*"), count=SCAN_COUNT):
            key = decoded(raw_key)
            if key.endswith(":history"):
                continue
            raw = self._redis.hget(key, "request")
            if raw is None or target not in {r["phone"] for r in json.loads(decoded(raw))["to"]}:
                continue
            record = self._store.get_by_id(key.rsplit(":", 1)[1])
            if record is not None:
                found.append(record)
        return sorted(found, key=lambda r: r.created_at or "")

    def _message(self, record: MessageRecord, target: str) -> dict[str, Any]:
        request = record.request
        mine = next(r for r in request["to"] if r["phone"] == target)
        params: list[str] = mine.get("params", [])
        text = PLACEHOLDER_PATTERN.sub(
            lambda m: params[int(m.group(1)) - 1] if int(m.group(1)) <= len(params) else "",
            request["text"],
        )
        return {
            "key": record.key,
            "state": record.state.value,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "text": text,
            "sender": request.get("sender"),
            "campaign": request.get("campaign"),
            "purpose": request.get("purpose") or "transactional",
            "send_at": request.get("send_at"),
            "recipients": record.recipients,
            "sms_id": record.sms_ids.get(target),
            "receipt": record.receipts.get(target),
            "replies": [r for r in record.replies if r.get("phone") == target],
            "opted_out_before_send": target in record.opted_out,
            "history": [
                {k: v for k, v in entry.items() if k in ("state", "at", "reason", "by")}
                for entry in record.history
            ],
        }

    def _intake(self, target: str) -> list[dict[str, Any]]:
        """Entries not yet turned into messages that mention the number: their key only (an
        entry may name other people too)."""
        held = self._redis.scan_iter(match=keys.intake_processing("*"), count=SCAN_COUNT)
        lists = [keys.INTAKE, keys.INTAKE_PROCESSING, keys.INTAKE_POISON, *map(decoded, held)]
        return [
            {"list": list_key, "key": _key_of(decoded(entry))}
            for list_key in lists
            for entry in self._redis.lrange(list_key, 0, -1)
            if mentions(decoded(entry), target)
        ]

    def _dead_intake(self, target: str) -> list[dict[str, str]]:
        """Intake dead letters that mention the number, without their text (it may name other
        people): id, date and reason."""
        out = []
        for raw_key in self._redis.scan_iter(match=keys.dead_letter("intake-*"), count=SCAN_COUNT):
            letter = decoded_hash(self._redis.hgetall(raw_key))
            if mentions(letter.get("detail", ""), target):
                out.append({k: letter.get(k, "") for k in ("dead_id", "at", "reason")})
        return out

    def _callbacks(self, target: str) -> dict[str, int]:
        pending = sum(
            1
            for _, envelope in self._redis.hscan_iter(keys.CALLBACK_EVENTS, count=SCAN_COUNT)
            if mentions(decoded(envelope), target)
        )
        dead = 0
        for raw_key in self._redis.scan_iter(match=keys.dead_callback("*"), count=SCAN_COUNT):
            envelope = self._redis.hget(raw_key, "envelope")
            dead += envelope is not None and mentions(decoded(envelope), target)
        return {"waiting": pending, "dead": dead}


def _key_of(entry: str) -> str | None:
    try:
        data = json.loads(entry)
    except ValueError:
        return None
    key = data.get("key") if isinstance(data, dict) else None
    return key if isinstance(key, str) else None
