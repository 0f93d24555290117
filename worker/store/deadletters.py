"""Dead letters for operators: list and filter, show, requeue safely, resolve, purge.

Requeue re-checks the send guard: only messages AllMySMS provably did not send (``rejected``,
``failed``) go back to their lane. An ``unknown`` message may have been sent: an operator must
first say what happened (``resolve --sent`` or ``--not-sent``), and that decision is recorded in
the message's history with who, when and why. ``expired`` messages are past their validity.

Every requeue, resolve and purge that changed something appends one entry to the audit stream
(:mod:`worker.store.audit`): who, the action, why, how many and which keys. The ``*_many``
methods record one entry for the whole batch (one operator command); the single-ref methods
are a batch of one.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.records import DeadLetter, MessageRecord
from producers.states import State
from producers.store import MessageStore, decoded_hash
from worker.settings import AUDIT_TTL_S
from worker.store.audit import PURGE_DEAD_LETTERS, REQUEUE, RESOLVE, AuditLog
from worker.store.ledger import Ledger


if TYPE_CHECKING:
    from collections.abc import Iterable

    from redis import Redis

REQUEUEABLE = frozenset({State.REJECTED, State.FAILED})
"""States in which AllMySMS provably sent nothing."""
SCAN_LIMIT = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """Dead-letter filters; every given one must match."""

    reason: str | None = None
    """Case-insensitive substring of the reason."""
    provider_status: int | None = None
    lane: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    campaign: str | None = None
    kind: str | None = None
    state: str | None = None

    def matches(self, letter: DeadLetter, record: MessageRecord | None) -> bool:
        at = datetime.fromisoformat(letter.at)
        campaign = record.request.get("campaign") if record else None
        return all(
            (
                self.reason is None or self.reason.lower() in letter.reason.lower(),
                self.provider_status is None or letter.provider_status == self.provider_status,
                self.lane is None or letter.lane == self.lane,
                self.since is None or at >= self.since,
                self.until is None or at <= self.until,
                self.campaign is None or campaign == self.campaign,
                self.kind is None or letter.kind == self.kind,
                self.state is None or letter.state == self.state,
            )
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What an operator action did (or, with ``--dry-run``, would do) to one dead letter."""

    ref: str
    action: str
    """``requeued``, ``resolved``, ``purged``, or ``refused``."""
    detail: str
    dry_run: bool = False
    changed: tuple[str, ...] = ()
    """The keys it changed when they are not ``ref`` itself (a split message's parts); the
    audit stream records these."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "action": self.action,
            "detail": self.detail,
            "dry_run": self.dry_run,
        }


class DeadLetterDesk:
    def __init__(
        self, connection: Redis, ledger: Ledger, *, ttl_s: int, audit_ttl_s: int = AUDIT_TTL_S
    ) -> None:
        self._redis = connection
        self._store = MessageStore(connection)
        self._ledger = ledger
        self._ttl_s = ttl_s
        self._audit = AuditLog(connection, ttl_s=audit_ttl_s)

    def list(
        self, query: Query | None = None, *, limit: int = 100
    ) -> list[tuple[DeadLetter, MessageRecord | None]]:
        """Newest first, at most ``limit`` matching ``query``."""
        query = query or Query()
        letters = self._store.dead_letters(limit=SCAN_LIMIT, ttl_s=self._ttl_s)
        records = self._store.get_many_by_id([letter.message_id for letter in letters])
        rows = []
        for letter, record in zip(letters, records, strict=True):
            if query.matches(letter, record):
                rows.append((letter, record))
                if len(rows) >= limit:
                    break
        return rows

    def show(self, ref: str) -> tuple[DeadLetter | None, MessageRecord | None]:
        """A message by its key (dead or not), or else a dead letter by its id, or else the
        newest refused intake entry that named ``ref`` as its key.

        Keys win: a dead-letter id is derived from a job id a foreign backend may have chosen,
        so it must never shadow a producer's message key. An intake entry's key comes last: it
        was never accepted, so a message may have been enqueued under that key since.
        """
        record = self._store.get(ref)
        if record is not None:
            return self._letter(record.message_id), record
        letter = self._letter(ref) or self._intake_letter(ref)
        if letter is None:
            return None, None
        record = self._store.get_by_id(letter.message_id) if letter.message_id else None
        return letter, record

    def _intake_letter(self, key: str) -> DeadLetter | None:
        letters = self._store.dead_letters(limit=SCAN_LIMIT, ttl_s=self._ttl_s)
        return next((d for d in letters if d.kind == "intake" and d.key == key), None)

    def _letter(self, dead_id: str) -> DeadLetter | None:
        raw = self._redis.hgetall(keys.dead_letter(dead_id))
        return DeadLetter.from_redis(decoded_hash(raw)) if raw else None

    def requeue_many(
        self, refs: Iterable[str], *, actor: str, why: str = "", dry_run: bool = False
    ) -> builtins.list[Decision]:
        """:meth:`requeue` each ref; one audit entry for those requeued."""
        decisions = [self._requeue(ref, actor=actor, dry_run=dry_run) for ref in refs]
        self._audit.record_changes(
            REQUEUE, actor=actor, targets=done_refs(decisions, "requeued"), why=why
        )
        return decisions

    def requeue(self, ref: str, *, actor: str, why: str = "", dry_run: bool = False) -> Decision:
        """Put a message that was provably not sent back in its lane, as a fresh job."""
        return self.requeue_many([ref], actor=actor, why=why, dry_run=dry_run)[0]

    def _requeue(self, ref: str, *, actor: str, dry_run: bool) -> Decision:
        _, record = self.show(ref)
        if record is None:
            return Decision(ref, "refused", "no message with that key or dead-letter id", dry_run)
        refusal = requeue_refusal(record)
        if refusal:
            return Decision(record.key, "refused", refusal, dry_run)
        if record.part_ids:
            return self._requeue_parts(record, actor=actor, dry_run=dry_run)
        if dry_run:
            return Decision(record.key, "requeued", f"would go back to lane {record.lane}", True)
        outcome, job = self._ledger.requeue(
            record.message_id,
            allowed=REQUEUEABLE,
            actor=actor,
            reason=f"requeued by {actor} from {record.state.value}",
        )
        if outcome != "queued":
            return Decision(record.key, "refused", f"state changed meanwhile to {outcome}")
        return Decision(record.key, "requeued", f"job {job} on lane {record.lane}")

    def _requeue_parts(self, parent: MessageRecord, *, actor: str, dry_run: bool) -> Decision:
        """A split message: requeue exactly its parts AllMySMS provably did not send."""
        parts = [(p.get("key") or "?", p["state"]) for p in parent.parts]
        chosen = [key for key, state in parts if State(state) in REQUEUEABLE]
        left = [(key, state) for key, state in parts if State(state) not in REQUEUEABLE]
        kept = f"; left as they are: {_part_list(left)}" if left else ""
        if dry_run:
            return Decision(
                parent.key,
                "requeued",
                f"would requeue {len(chosen)} of {len(parts)} parts: {', '.join(chosen)}{kept}",
                True,
            )
        done = [self._requeue(key, actor=actor, dry_run=False) for key in chosen]
        requeued = [d.ref for d in done if d.action == "requeued"]
        changed = [f"{d.ref} ({d.detail})" for d in done if d.action != "requeued"]
        detail = f"requeued {len(requeued)} of {len(parts)} parts: {', '.join(requeued) or '-'}"
        if changed:
            detail += f"; refused meanwhile: {', '.join(changed)}"
        return Decision(
            parent.key,
            "requeued" if requeued else "refused",
            detail + kept,
            changed=tuple(requeued),
        )

    def resolve_many(
        self, refs: Iterable[str], *, sent: bool, actor: str, why: str, dry_run: bool = False
    ) -> builtins.list[Decision]:
        """:meth:`resolve` each ref; one audit entry for those resolved (its ``why`` starts
        with the finding: ``sent:`` or ``not sent:``)."""
        decisions = [
            self._resolve(ref, sent=sent, actor=actor, why=why, dry_run=dry_run) for ref in refs
        ]
        self._audit.record_changes(
            RESOLVE,
            actor=actor,
            targets=done_refs(decisions, "resolved"),
            why=f"{'sent' if sent else 'not sent'}: {why}",
        )
        return decisions

    def resolve(
        self, ref: str, *, sent: bool, actor: str, why: str, dry_run: bool = False
    ) -> Decision:
        """Record an operator's finding about an ``unknown`` message: it was sent, or not.

        ``--sent`` makes it ``sent`` and drops the dead letter; ``--not-sent`` makes it
        ``failed`` (provably not sent), which ``requeue`` then accepts.
        """
        return self.resolve_many([ref], sent=sent, actor=actor, why=why, dry_run=dry_run)[0]

    def _resolve(self, ref: str, *, sent: bool, actor: str, why: str, dry_run: bool) -> Decision:
        _, record = self.show(ref)
        if record is None:
            return Decision(ref, "refused", "no message with that key or dead-letter id", dry_run)
        refusal = resolve_refusal(record)
        if refusal:
            return Decision(record.key, "refused", refusal, dry_run)
        target = State.SENT if sent else State.FAILED
        detail = f"{'sent' if sent else 'not sent'} according to {actor}: {why}"
        if dry_run:
            return Decision(record.key, "resolved", f"would become {target.value}: {detail}", True)
        done = self._ledger.finish(
            record.message_id,
            target,
            {"resolution": detail},
            expected=State.UNKNOWN,
            reason=f"resolved by operator: {detail}",
            actor=actor,
            record={"key": record.key, "lane": record.lane, "job_id": ""},
        )
        if not done:
            return Decision(record.key, "refused", "state changed meanwhile")
        return Decision(record.key, "resolved", f"now {target.value}: {detail}")

    def purge_many(
        self, refs: Iterable[str], *, actor: str, why: str = "", dry_run: bool = False
    ) -> builtins.list[Decision]:
        """:meth:`purge` each ref; one audit entry for those purged."""
        decisions = [self._purge(ref, self.show(ref)[0], dry_run=dry_run) for ref in refs]
        self._audit.record_changes(
            PURGE_DEAD_LETTERS, actor=actor, targets=done_refs(decisions, "purged"), why=why
        )
        return decisions

    def purge(self, ref: str, *, actor: str, why: str = "", dry_run: bool = False) -> Decision:
        """Forget a dead letter (the message record, if any, stays until it expires)."""
        return self.purge_many([ref], actor=actor, why=why, dry_run=dry_run)[0]

    def purge_dead_id(self, dead_id: str, *, actor: str, why: str = "") -> Decision:
        """Forget the dead letter ``dead_id``, never a message's that has this text as its key
        (recorded in the audit stream like :meth:`purge`)."""
        decision = self._purge(dead_id, self._letter(dead_id), dry_run=False)
        self._audit.record_changes(
            PURGE_DEAD_LETTERS, actor=actor, targets=done_refs([decision], "purged"), why=why
        )
        return decision

    def _purge(self, ref: str, letter: DeadLetter | None, *, dry_run: bool) -> Decision:
        if letter is None:
            return Decision(ref, "refused", "no dead letter for that key or id", dry_run)
        if not dry_run:
            self._redis.delete(keys.dead_letter(letter.dead_id))
            self._redis.zrem(keys.DEAD_LETTERS, letter.dead_id)
        return Decision(letter.ref, "purged", f"{letter.kind} dead letter removed", dry_run)


def _part_list(parts: list[tuple[str, str]]) -> str:
    return ", ".join(f"{key} ({state})" for key, state in parts)


def done_refs(decisions: list[Decision], action: str) -> list[str]:
    """The refs of the decisions that did ``action`` (not refused, not a dry run)."""
    return [
        ref
        for d in decisions
        if d.action == action and not d.dry_run
        for ref in (d.changed or (d.ref,))
    ]


def requeue_refusal(record: MessageRecord) -> str | None:
    """Why ``requeue`` refuses ``record``, or None when it (for a split message: at least one
    of its parts) may go back to its lane."""
    if record.part_ids:
        return _parts_refusal(record)
    state = record.state
    if state in REQUEUEABLE:
        return None
    if state is State.UNKNOWN:
        return (
            "may have been sent: find out, then resolve it as sent or not sent "
            "(smsq dlq resolve KEY --sent|--not-sent) before requeueing"
        )
    if state is State.EXPIRED:
        return "expired: its valid_for_s has passed; enqueue a new message with a new key"
    return f"is {state.value}: it was sent or is in progress; never requeued"


def _parts_refusal(parent: MessageRecord) -> str | None:
    parts = [(p.get("key") or "?", p["state"]) for p in parent.parts]
    if any(State(state) in REQUEUEABLE for _, state in parts):
        return None
    unknown = [key for key, state in parts if state == State.UNKNOWN.value]
    hint = (
        f"; resolve the unknown part(s) first (smsq dlq resolve {unknown[0]} --sent|--not-sent)"
        if unknown
        else ""
    )
    return f"none of its {len(parts)} parts can be requeued: {_part_list(parts)}{hint}"


def resolve_refusal(record: MessageRecord) -> str | None:
    """Why ``resolve`` refuses ``record``, or None when it is ``unknown`` and may be resolved."""
    if record.part_ids:
        # A split message has no send of its own: each part has its state and dead letter.
        count = len(record.part_ids)
        return (
            f"is split into {count} parts, each resolved on its own "
            f"({record.key}#1/{count} to {record.key}#{count}/{count})"
        )
    if record.state is State.UNKNOWN:
        return None
    return f"only unknown messages are resolved; this one is {record.state.value}"
