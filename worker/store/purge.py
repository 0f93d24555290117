"""``smsq purge --phone NUMBER``: erase one person's data everywhere smsq keeps it (GDPR Art. 17).

A message sent only to that person is deleted with its history, dead letter and RQ job; in a
message to several people, that person's entry (number and params) is removed and the rest kept.
Intake entries and intake dead letters that mention the number are deleted. Logs never hold full
numbers, and the sandbox keeps nothing in Redis.

Replies the polling fallback holds until their message is known are deleted too.
Callback events waiting in the outbox and dead callbacks are erased too: a receipt or a reply
event of that person (it holds the number, and a reply its text) and any event of a message
deleted here are deleted; a final event of a message to several people loses that person's
entries (``sms_ids``, ``invalid_numbers``) and is still delivered to the others' producer. A final
event left naming nobody, whose message is gone, is deleted.

Each purge (not a dry run) leaves an erasure record in the audit stream
(:mod:`worker.store.audit`): who, when, why, and how many items of each kind, with a random
``erasure_id``; no number, no key, nothing derived from the number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.errors import InvalidInputError, PhoneError
from producers.phones import normalise_phone
from producers.store import decoded, decoded_hash
from worker.settings import AUDIT_TTL_S
from worker.store import lua
from worker.store.audit import ERASURE, AuditEntry, AuditLog, new_erasure_id


if TYPE_CHECKING:
    from collections.abc import Set as AbstractSet

    from redis import Redis

SCAN_COUNT = 1000
ERASE_ATTEMPTS = 5
"""Times one callback event is read again when it changed between the read and the erase."""


@dataclass
class PurgeReport:
    deleted_messages: list[str] = field(default_factory=list)
    redacted_messages: list[str] = field(default_factory=list)
    deleted_dead_letters: list[str] = field(default_factory=list)
    deleted_intake_entries: int = 0
    deleted_callback_events: int = 0
    """Callback events waiting in the outbox, deleted."""
    redacted_callback_events: int = 0
    """Callback events waiting in the outbox, rewritten without the number."""
    deleted_dead_callbacks: int = 0
    redacted_dead_callbacks: int = 0
    deleted_held_replies: int = 0
    """Replies the polling fallback held (not yet matched to a message), deleted."""
    erasure_id: str = ""
    """The erasure record's id in the audit stream (empty for a dry run)."""
    deleted_ids: set[str] = field(default_factory=set, repr=False)
    """Message ids of ``deleted_messages`` (their callback events go too)."""
    redacted_ids: set[str] = field(default_factory=set, repr=False)

    def counts(self) -> dict[str, int]:
        """How many items of each kind (the erasure record's ``counts``)."""
        return {
            "messages_deleted": len(self.deleted_messages),
            "messages_redacted": len(self.redacted_messages),
            "dead_letters_deleted": len(self.deleted_dead_letters),
            "intake_entries_deleted": self.deleted_intake_entries,
            "callback_events_deleted": self.deleted_callback_events,
            "callback_events_redacted": self.redacted_callback_events,
            "dead_callbacks_deleted": self.deleted_dead_callbacks,
            "dead_callbacks_redacted": self.redacted_dead_callbacks,
            "held_replies_deleted": self.deleted_held_replies,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted_messages": self.deleted_messages,
            "redacted_messages": self.redacted_messages,
            "deleted_dead_letters": self.deleted_dead_letters,
            "deleted_intake_entries": self.deleted_intake_entries,
            "deleted_callback_events": self.deleted_callback_events,
            "redacted_callback_events": self.redacted_callback_events,
            "deleted_dead_callbacks": self.deleted_dead_callbacks,
            "redacted_dead_callbacks": self.redacted_dead_callbacks,
            "deleted_held_replies": self.deleted_held_replies,
            "erasure_id": self.erasure_id,
        }


class Purger:
    def __init__(
        self, connection: Redis, *, default_region: str, audit_ttl_s: int = AUDIT_TTL_S
    ) -> None:
        self._redis = connection
        self._region = default_region
        self._audit = AuditLog(connection, ttl_s=audit_ttl_s)
        self._erase = connection.register_script(lua.load("outbox_erase"))

    def target(self, phone: str) -> str:
        """``phone`` as smsq stores it.

        Raises:
            PhoneError: ``phone`` is not a number smsq could ever have stored.
        """
        return normalise_phone(phone, self._region)

    def purge(self, phone: str, *, actor: str, why: str = "", dry_run: bool = False) -> PurgeReport:
        """Erase every trace of ``phone`` (any format smsq accepts); record who did it and how
        many items of each kind were erased in the audit stream (not for a dry run).

        Raises:
            PhoneError: ``phone`` is not a number smsq could ever have stored.
            InvalidInputError: ``actor`` (field ``by``) or ``why`` holds the number (the audit
                stream must not).
        """
        target = self.target(phone)
        for name, text in (("by", actor), ("why", why)):
            if mentions(text, target):
                raise InvalidInputError(
                    name, "must not hold the phone number: the audit stream keeps none"
                )
        report = self._erase_everywhere(target, dry_run)
        if not dry_run:
            counts = report.counts()
            report.erasure_id = new_erasure_id()
            self._audit.record(
                AuditEntry(
                    action=ERASURE,
                    actor=actor,
                    why=why,
                    count=sum(counts.values()),
                    counts=counts,
                    erasure_id=report.erasure_id,
                )
            )
        return report

    def _erase_everywhere(self, target: str, dry_run: bool) -> PurgeReport:
        report = PurgeReport()
        for raw_key in self._redis.scan_iter(match=keys.message("*"), count=SCAN_COUNT):
            key = decoded(raw_key)
            if key.endswith(":history"):
                continue
            self._purge_message(key, target, report, dry_run)
        for raw_key in self._redis.scan_iter(match=keys.dead_letter("intake-*"), count=SCAN_COUNT):
            detail = self._redis.hget(raw_key, "detail")
            if detail is not None and mentions(decoded(detail), target):
                dead_id = decoded(raw_key).rsplit(":", 1)[1]
                report.deleted_dead_letters.append(dead_id)
                if not dry_run:
                    self._redis.delete(raw_key)
                    self._redis.zrem(keys.DEAD_LETTERS, dead_id)
        held = self._redis.scan_iter(match=keys.intake_processing("*"), count=SCAN_COUNT)
        lists = [keys.INTAKE, keys.INTAKE_PROCESSING, keys.INTAKE_POISON, *map(decoded, held)]
        for list_key in lists:
            for entry in self._redis.lrange(list_key, 0, -1):
                if mentions(decoded(entry), target):
                    report.deleted_intake_entries += 1
                    if not dry_run:
                        self._redis.lrem(list_key, 1, entry)  # type: ignore[arg-type]
        self._purge_callbacks(target, report, dry_run)
        self._purge_held_replies(target, report, dry_run)
        return report

    def _purge_held_replies(self, target: str, report: PurgeReport, dry_run: bool) -> None:
        """Replies the polling fallback holds until their message is known (their text and
        number, an hour at most)."""
        for mo_id, raw in self._redis.hscan_iter(keys.POLLED_REPLIES, count=SCAN_COUNT):
            if mentions(decoded(raw), target):
                report.deleted_held_replies += 1
                if not dry_run:
                    self._redis.hdel(keys.POLLED_REPLIES, mo_id)

    def _purge_callbacks(self, target: str, report: PurgeReport, dry_run: bool) -> None:
        """Waiting callback events (and dead ones of earlier versions, whose envelope stayed in
        the events hash), then dead callbacks, then the waiting events not seen the first time
        (a dead callback requeued by ``smsq callbacks --requeue`` meanwhile has left the dead
        ones before they were read)."""
        seen: set[str] = set()
        self._purge_pending(target, report, dry_run, seen)
        self._purge_dead(target, report, dry_run)
        self._purge_pending(target, report, dry_run, seen)

    def _purge_pending(
        self, target: str, report: PurgeReport, dry_run: bool, seen: set[str]
    ) -> None:
        """Waiting events not in ``seen`` (which gets their ids)."""
        pending = [
            (decoded(event_id), decoded(envelope))
            for event_id, envelope in self._redis.hscan_iter(keys.CALLBACK_EVENTS, count=SCAN_COUNT)
            if decoded(event_id) not in seen
        ]
        for event_id, envelope in pending:
            seen.add(event_id)
            outcome = self._erase_event(event_id, "pending", envelope, target, report, dry_run)
            if outcome == "deleted":
                report.deleted_callback_events += 1
            elif outcome == "redacted":
                report.redacted_callback_events += 1

    def _purge_dead(self, target: str, report: PurgeReport, dry_run: bool) -> None:
        pattern = keys.dead_callback("*")
        for raw_key in self._redis.scan_iter(match=pattern, count=SCAN_COUNT):
            raw = self._redis.hget(raw_key, "envelope")
            if raw is None:
                continue
            event_id = decoded(raw_key)[len(keys.CALLBACK_DEAD_EVENT_PREFIX) :]
            outcome = self._erase_event(event_id, "dead", decoded(raw), target, report, dry_run)
            if outcome == "deleted":
                report.deleted_dead_callbacks += 1
            elif outcome == "redacted":
                report.redacted_dead_callbacks += 1

    def _erase_event(
        self,
        event_id: str,
        where: str,
        envelope: str,
        target: str,
        report: PurgeReport,
        dry_run: bool,
    ) -> str | None:
        """Delete or redact one event if it is about ``target``; None when it is not."""
        for _ in range(ERASE_ATTEMPTS):
            replacement = self.erased_envelope(
                json.loads(envelope),
                target,
                deleted_ids=report.deleted_ids,
                redacted_ids=report.redacted_ids,
            )
            if replacement is None:
                return None
            outcome = "deleted" if replacement == "" else "redacted"
            if dry_run:
                return outcome
            done = self._erase(
                keys=[
                    keys.CALLBACK_EVENTS,
                    keys.CALLBACK_DUE,
                    keys.CALLBACK_ATTEMPTS,
                    keys.CALLBACK_DEAD,
                    keys.dead_callback(event_id),
                    keys.CALLBACK_DEAD_REASONS,
                ],
                args=[event_id, where, envelope, replacement],
            )
            if done:
                return outcome
            # Changed meanwhile (delivered, gone dead, redacted by another purge): read again.
            current = (
                self._redis.hget(keys.CALLBACK_EVENTS, event_id)
                if where == "pending"
                else self._redis.hget(keys.dead_callback(event_id), "envelope")
            )
            if current is None:
                return None
            envelope = decoded(current)
        return None

    def erased_envelope(
        self,
        envelope: dict[str, Any],
        target: str,
        *,
        deleted_ids: AbstractSet[str] = frozenset(),
        redacted_ids: AbstractSet[str] = frozenset(),
    ) -> str | None:
        """A callback envelope without ``target``: the redacted envelope (JSON), "" to delete
        the event, None when it is not about ``target``.

        Args:
            deleted_ids: ids of the messages this purge deletes (their events go too).
            redacted_ids: ids of the messages it removes ``target`` from (their final events
                are kept for the other recipients, even when they name none of them).
        """
        event = envelope.get("event")
        if not isinstance(event, dict):
            return None
        if event.get("message_id") in deleted_ids:
            return ""
        phone = event.get("phone")
        if isinstance(phone, str):  # a receipt or a reply: about one person
            return "" if self._same(phone, target) else None
        sms_ids = _json_field(event.get("sms_ids"), {})
        invalid = _json_field(event.get("invalid_numbers"), [])
        kept_ids = {p: i for p, i in sms_ids.items() if not self._same(p, target)}
        kept_invalid = [p for p in invalid if not self._same(p, target)]
        if len(kept_ids) == len(sms_ids) and len(kept_invalid) == len(invalid):
            return None
        if not kept_ids and not kept_invalid and event.get("message_id") not in redacted_ids:
            return ""
        # Stored as JSON text, as the Lua scripts write them (see worker.callbacks.outbox).
        event["sms_ids"] = json.dumps(kept_ids)
        event["invalid_numbers"] = json.dumps(kept_invalid)
        return json.dumps(envelope, ensure_ascii=False)

    def _purge_message(self, key: str, target: str, report: PurgeReport, dry_run: bool) -> None:
        raw = decoded_hash(self._redis.hgetall(key))
        if "request" not in raw:
            return
        request = json.loads(raw["request"])
        phones = [r["phone"] for r in request["to"]]
        refused = json.loads(raw.get("refused_numbers") or "[]")
        refused_hit = [r for r in refused if self._same(r["phone"], target)]
        if target not in phones and not refused_hit:
            return
        mid = raw["message_id"]
        label = raw.get("key", mid)
        if all(p == target for p in phones):
            report.deleted_messages.append(label)
            report.deleted_ids.add(mid)
            if not dry_run:
                self._delete_message(mid, raw)
            return
        report.redacted_messages.append(label)
        report.redacted_ids.add(mid)
        if dry_run:
            return
        request["to"] = [r for r in request["to"] if r["phone"] != target]
        all_sms_ids: dict[str, str] = json.loads(raw.get("sms_ids") or "{}")
        sms_ids = {p: i for p, i in all_sms_ids.items() if p != target}
        if target in all_sms_ids:
            self._forget_sms_id(mid, all_sms_ids[target])
        invalid = [p for p in json.loads(raw.get("invalid_numbers") or "[]") if p != target]
        self._redis.hset(
            key,
            mapping={
                "request": json.dumps(request, ensure_ascii=False),
                "recipients": str(len(request["to"])),
                "sms_ids": json.dumps(sms_ids),
                "invalid_numbers": json.dumps(invalid),
                "refused_numbers": json.dumps(
                    [r for r in refused if r not in refused_hit], ensure_ascii=False
                ),
            },
        )

    def _forget_sms_id(self, mid: str, sms_id: str) -> None:
        """Drop one recipient's receipt, replies (their text) and smsId index entry."""
        replies = self._redis.hgetall(keys.replies(mid))
        theirs = [
            field for field, value in replies.items() if json.loads(value).get("sms_id") == sms_id
        ]
        pipe = self._redis.pipeline()
        pipe.hdel(keys.receipts(mid), sms_id)
        pipe.delete(keys.sms_id(sms_id))
        if theirs:
            pipe.hdel(keys.replies(mid), *theirs)
        pipe.execute()

    def _delete_message(self, mid: str, raw: dict[str, str]) -> None:
        jid = keys.job_id(mid)
        pipe = self._redis.pipeline()
        for sms_id in json.loads(raw.get("sms_ids") or "{}").values():
            pipe.delete(keys.sms_id(sms_id))
        pipe.delete(
            keys.message(mid),
            keys.history(mid),
            keys.dead_letter(mid),
            keys.rq_job(jid),
            f"rq:results:{jid}",
            keys.receipts(mid),
            keys.replies(mid),
        )
        pipe.zrem(keys.DEAD_LETTERS, mid)
        pipe.zrem(keys.SENDING, mid)
        campaign = json.loads(raw.get("request") or "{}").get("campaign")
        if campaign:
            pipe.zrem(keys.campaign_index(campaign), mid)
        pipe.zrem(keys.LATER, mid)
        queue = f"smsq-{raw.get('lane', 'default')}"
        pipe.lrem(keys.rq_queue(queue), 0, jid)
        pipe.zrem(f"rq:failed:{queue}", jid)
        pipe.execute()

    def _same(self, raw_phone: str, target: str) -> bool:
        try:
            return normalise_phone(raw_phone, self._region) == target
        except PhoneError:
            return "".join(c for c in raw_phone if c.isdigit()).endswith(target[-9:])


def mentions(text: str, target: str) -> bool:
    """Raw text (an intake entry, an operator's explanation) holding the number in any spacing
    or prefix form: its last nine digits appear once separators are dropped. Erring towards
    erasure is fine."""
    return target[-9:] in "".join(c for c in text if c.isdigit())


def _json_field(value: object, empty: Any) -> Any:
    """A field the Lua scripts store as JSON text (or already decoded)."""
    if isinstance(value, str):
        return json.loads(value or json.dumps(empty))
    return value if isinstance(value, type(empty)) else empty
