"""Cancel messages smsq still holds: ``queued`` → ``cancelled``, never sent; and ``scheduled``
ones through AllMySMS's ``deleteCampaign`` (``worker.store.cancel_scheduled``).

A cancel is one compare-and-set in Lua (``ledger_finish``, expected state ``queued``), the
same guard a worker's claim takes (``ledger_claim``: ``queued`` → ``sending``). Whichever
script runs first wins; the other finds the state moved on. So a cancel that meets a worker
ends in exactly one of ``cancelled`` (nothing posted) or the worker's send, never both. RQ job
copies of a cancelled message may still wait in their lane: the worker that dequeues one finds
the message ``cancelled``, claims nothing, posts nothing and records no dead letter.

``cancelled`` is terminal (the key's tombstone says so after the record expires, and a
``message.final`` callback event carries it) but not a dead letter: it was someone's decision.
A split message is cancelled part by part: its queued (and scheduled) parts are cancelled, and
the answer names each part it could not cancel and why. Each cancel command that changed
something appends one ``cancel`` entry (who, why, count, keys) to the audit stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from producers import keys
from producers.cancel_queued import why_not
from producers.records import MessageRecord
from producers.redis_errors import translate_redis_errors
from producers.states import State
from producers.store import MessageStore, decoded
from worker.settings import AUDIT_TTL_S
from worker.store.audit import CANCEL, AuditLog
from worker.store.cancel_scheduled import ScheduledCanceller
from worker.store.deadletters import Decision, done_refs


if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from redis import Redis

    from worker.store.cancel_scheduled import CampaignDeleter
    from worker.store.ledger import Ledger

SCAN_COUNT = 1000
"""Keys asked per ``SCAN`` step while looking for a campaign's messages."""
CANCELLED = "cancelled"
REFUSED = "refused"
NOT_FOUND = "no message with that key"
CANCELLABLE = frozenset({State.QUEUED.value, State.SCHEDULED.value})
"""States a cancel acts on: ``queued`` here, ``scheduled`` through deleteCampaign."""


def cancel_refusal(record: MessageRecord) -> str | None:
    """Why ``record`` cannot be cancelled, or None when it (for a split message: at least one
    of its parts) is ``queued`` or ``scheduled`` (AllMySMS may still refuse that one)."""
    if record.part_ids:
        parts = [(p.get("key") or "?", p["state"]) for p in record.parts]
        if any(state in CANCELLABLE for _, state in parts):
            return None
        listed = ", ".join(f"{key} ({state})" for key, state in parts)
        return f"none of its {len(parts)} parts is queued or scheduled: {listed}"
    if record.state.value in CANCELLABLE:
        return None
    return why_not(record.state)


class Canceller:
    """Cancels queued messages (and queued parts of split ones), and scheduled ones when given
    a ``deleter`` (a factory of the AllMySMS client, called on the first scheduled message),
    recorded in the audit stream."""

    def __init__(
        self,
        connection: Redis,
        ledger: Ledger,
        *,
        audit_ttl_s: int = AUDIT_TTL_S,
        deleter: Callable[[], CampaignDeleter] | None = None,
    ):
        self._redis = connection
        self._store = MessageStore(connection)
        self._ledger = ledger
        self._audit = AuditLog(connection, ttl_s=audit_ttl_s)
        self._scheduled = ScheduledCanceller(connection, ledger, deleter)

    def cancel_many(
        self, refs: Iterable[str], *, actor: str, why: str, dry_run: bool = False
    ) -> list[Decision]:
        """Cancel each key in ``refs``; one audit entry (action ``cancel``) for those cancelled.

        Args:
            refs: message keys (a split message's key, or one of its parts' keys).
            actor: who decides, recorded in each message's history and in the audit stream.
            why: why, recorded the same way.
            dry_run: say what would happen, change nothing.
        """
        decisions = [
            self._cancel(ref, actor=actor, why=why, dry_run=dry_run) for ref in dict.fromkeys(refs)
        ]
        with translate_redis_errors(self._redis):
            self._audit.record_changes(
                CANCEL, actor=actor, targets=done_refs(decisions, CANCELLED), why=why
            )
        return decisions

    def cancel(self, ref: str, *, actor: str, why: str, dry_run: bool = False) -> Decision:
        """Cancel one message by its key (see :meth:`cancel_many`)."""
        return self.cancel_many([ref], actor=actor, why=why, dry_run=dry_run)[0]

    def campaign_keys(self, campaign: str) -> list[str]:
        """Keys of the campaign's messages that hold something to cancel (queued or scheduled,
        or split with such a part), sorted; parts are reached through their split message.
        Found through the campaign index; a campaign it does not know (enqueued before the
        index existed) is looked for record by record."""
        from worker.store.campaigns import campaign_records

        with translate_redis_errors(self._redis):
            indexed = campaign_records(self._redis, campaign)
        if not indexed:
            return self._select(lambda r: r.request.get("campaign") == campaign)
        return sorted(r.key for r in indexed if r.parent is None and cancel_refusal(r) is None)

    def prefix_keys(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (a campaign file's ``KEY:n`` requests) that hold
        something to cancel, sorted, like :meth:`campaign_keys`."""
        return self._select(lambda r: r.key.startswith(prefix))

    def _select(self, wanted: Callable[[MessageRecord], bool]) -> list[str]:
        found = []
        with translate_redis_errors(self._redis):
            for raw_key in self._redis.scan_iter(match=keys.message("*"), count=SCAN_COUNT):
                name = decoded(raw_key)
                if ":" in name.removeprefix(keys.MESSAGE_PREFIX):
                    continue  # history and other per-message keys
                found.append(name.removeprefix(keys.MESSAGE_PREFIX))
        records = self._store.get_many_by_id(list(found))
        return sorted(
            r.key
            for r in records
            if r is not None and r.parent is None and wanted(r) and cancel_refusal(r) is None
        )

    def _cancel(self, ref: str, *, actor: str, why: str, dry_run: bool) -> Decision:
        record = self._store.get(ref)
        if record is None:
            return Decision(ref, REFUSED, NOT_FOUND, dry_run)
        refusal = cancel_refusal(record)
        if refusal:
            return Decision(record.key, REFUSED, refusal, dry_run)
        if record.part_ids:
            return self._cancel_parts(record, actor=actor, why=why, dry_run=dry_run)
        if record.state is State.SCHEDULED:
            return self._scheduled.cancel(record, actor=actor, why=why, dry_run=dry_run)
        if dry_run:
            return Decision(record.key, CANCELLED, "would be cancelled (it is queued)", True)
        if not self._finish(record, actor=actor, why=why):
            now = self._store.get_by_id(record.message_id)
            state = now.state.value if now else "gone"
            return Decision(record.key, REFUSED, f"state changed meanwhile to {state}")
        return Decision(record.key, CANCELLED, f"cancelled by {actor}: {why}")

    def _cancel_parts(
        self, parent: MessageRecord, *, actor: str, why: str, dry_run: bool
    ) -> Decision:
        parts = [(p.get("key") or "?", p["state"]) for p in parent.parts]
        chosen = [key for key, state in parts if state in CANCELLABLE]
        left = [(key, state) for key, state in parts if state not in CANCELLABLE]
        if dry_run:
            detail = f"would cancel {len(chosen)} of {len(parts)} parts: {', '.join(chosen)}"
            deferred = [key for key, state in parts if state == State.SCHEDULED.value]
            if deferred:
                detail += f" (through deleteCampaign: {', '.join(deferred)})"
            return Decision(parent.key, CANCELLED, detail + _not_cancelled(left), True)
        done = [self._cancel(key, actor=actor, why=why, dry_run=False) for key in chosen]
        cancelled = [d.ref for d in done if d.action == CANCELLED]
        raced = [(d.ref, d.detail) for d in done if d.action != CANCELLED]
        detail = f"cancelled {len(cancelled)} of {len(parts)} parts: {', '.join(cancelled) or '-'}"
        return Decision(
            parent.key,
            CANCELLED if cancelled else REFUSED,
            detail + _not_cancelled(left, raced),
            changed=tuple(cancelled),
        )

    def _finish(self, record: MessageRecord, *, actor: str, why: str) -> bool:
        return self._ledger.finish(
            record.message_id,
            State.CANCELLED,
            {"cancelled_by": actor, "cancel_reason": why},
            expected=State.QUEUED,
            reason=f"cancelled by {actor}: {why}",
            actor=actor,
            record={"key": record.key, "lane": record.lane, "job_id": ""},
        )


def _not_cancelled(left: list[tuple[str, str]], raced: list[tuple[str, str]] | None = None) -> str:
    """The parts a split message's cancel left alone, each with why."""
    reasons = [f"{key} ({why_not(State(state))})" for key, state in left]
    reasons += [f"{key} ({detail})" for key, detail in raced or []]
    return f"; not cancelled: {'; '.join(reasons)}" if reasons else ""
