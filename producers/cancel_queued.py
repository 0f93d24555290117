"""A producer cancels its own ``queued`` messages: they end ``cancelled``, never sent.

:class:`Canceller` runs the worker's own compare-and-set script (``ledger_finish``, expected
``queued``, a copy in :mod:`producers.ledger_finish_lua`), so a producer's cancel meets a
worker's claim exactly as ``smsq cancel`` does: one of them wins, never both. Who and why go
into the message's history (not into the operator audit stream: the producer is not an
operator). A split message's queued parts are cancelled, the others named with why.

A ``scheduled`` message (AllMySMS holds it for its DATE) is refused: cancelling it means calling
AllMySMS's deleteCampaign with smsq's provider credentials, which producers never hold. The
answer says where to go: an operator (``smsq cancel``, the admin page), or the gateway's
``deleteCampaign`` for a producer that sends through the gateway.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.exceptions

from producers import keys
from producers.durability import Barrier
from producers.errors import ConfigError, InvalidInputError
from producers.ledger_finish_lua import LEDGER_FINISH_LUA
from producers.records import utc_now_iso
from producers.redis_errors import translate_redis_errors
from producers.states import State
from producers.store import MessageStore, decoded


if TYPE_CHECKING:
    from redis import Redis

    from producers.config import ProducerSettings
    from producers.records import MessageRecord

CANCELLED = "cancelled"
REFUSED = "refused"
NOT_FOUND = "no message with that key"
SCHEDULED_WHY = (
    "is scheduled: AllMySMS holds it for its DATE; only an operator (smsq cancel, the admin "
    "page) or the gateway's deleteCampaign can cancel it there"
)
NO_RIGHTS = (
    "its Redis user may not cancel (a python-producer ACL user enqueues and reads only): cancel "
    "with the smsq user, through an operator (smsq cancel) or the gateway's deleteCampaign"
)
WHY_NOT = {
    State.SENDING: "is sending: a worker claimed it and may be talking to AllMySMS; it cannot "
    "be cancelled any more",
    State.SENT: "is sent: AllMySMS accepted it; it cannot be cancelled",
    State.PARTIAL: "is partial: AllMySMS accepted it for some recipients; it cannot be cancelled",
    State.CANCELLED: "is already cancelled",
    State.UNKNOWN: "is unknown: it may have been sent; it is no longer queued, nothing to cancel",
}
"""Why a message in each state cannot be cancelled (shared with ``smsq cancel``)."""


def why_not(state: State) -> str:
    """Why a message in ``state`` cannot be cancelled (queued and scheduled aside)."""
    return WHY_NOT.get(state, f"is {state.value}: it is no longer queued, nothing to cancel")


@dataclass(frozen=True, slots=True)
class Cancel:
    """What a cancel did to one message."""

    key: str
    action: str
    """``cancelled`` (the message, or at least one of its parts) or ``refused``."""
    detail: str
    parts: tuple[str, ...] = ()
    """A split message: the keys of the parts it cancelled."""

    @property
    def cancelled(self) -> bool:
        return self.action == CANCELLED

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "action": self.action, "detail": self.detail}


class Canceller:
    """Cancels queued messages from the producer side (see the module docstring)."""

    def __init__(self, connection: Redis, settings: ProducerSettings) -> None:
        self._redis = connection
        self._store = MessageStore(connection)
        self._ttl_s = settings.outcome_ttl_s
        self._barrier = Barrier.from_settings(settings)
        self._script = connection.register_script(LEDGER_FINISH_LUA)

    def cancel(self, key: str, *, by: str, why: str) -> Cancel:
        """Cancel the message with idempotency key ``key`` (a split message's, or a part's).

        Raises:
            InvalidInputError: ``by`` or ``why`` is blank (both are recorded).
            ConfigError: the Redis user lacks the rights of the cancel script (a
                ``python-producer`` ACL user); nothing was changed.
            RedisUnavailableError: Redis could not be reached.
            NotReplicatedError: too few replicas confirmed the cancel (it may hold; asking
                again is safe).
        """
        for field, value in (("by", by), ("why", why)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidInputError(field, "must say who cancels and why (it is recorded)")
        with translate_redis_errors(self._redis):
            record = self._store.get(key)
            if record is None:
                return Cancel(key, REFUSED, NOT_FOUND)
            if record.part_ids:
                return self._cancel_parts(record, by=by, why=why)
            return self._cancel_one(record, by=by, why=why)

    def _cancel_one(self, record: MessageRecord, *, by: str, why: str) -> Cancel:
        if record.state is State.SCHEDULED:
            return Cancel(record.key, REFUSED, SCHEDULED_WHY)
        if record.state is not State.QUEUED:
            return Cancel(record.key, REFUSED, why_not(record.state))
        reason = f"cancelled by {by}: {why}"
        outcome = self._finish(record, by=by, why=why, reason=reason)
        if outcome != "ok":
            return Cancel(record.key, REFUSED, f"state changed meanwhile to {outcome}")
        return Cancel(record.key, CANCELLED, reason)

    def _cancel_parts(self, parent: MessageRecord, *, by: str, why: str) -> Cancel:
        parts = [(p.get("key") or "?", p["state"]) for p in parent.parts]
        done, left = [], []
        for key, state in parts:
            part = self._store.get(key) if state == State.QUEUED.value else None
            outcome = self._cancel_one(part, by=by, why=why) if part else None
            if outcome is not None and outcome.cancelled:
                done.append(key)
            else:
                detail = outcome.detail if outcome else _part_why(state)
                left.append(f"{key} ({detail})")
        detail = f"cancelled {len(done)} of {len(parts)} parts: {', '.join(done) or '-'}"
        if left:
            detail += f"; not cancelled: {'; '.join(left)}"
        return Cancel(parent.key, CANCELLED if done else REFUSED, detail, tuple(done))

    def _may_cancel(self, mid: str) -> None:
        """Refuse a Redis user whose ACL lacks what the script runs, before it writes anything
        (a script stopped by NOPERM keeps its first writes: the state without its history).

        Each probe is a no-op (a field, member or count that changes nothing) needing one of
        the rights a ``python-producer`` ACL user does not have.

        Raises:
            ConfigError: names ``REDIS_URL`` (its user) and where to cancel instead.
        """
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(keys.message(mid), "")
        pipe.zrem(keys.SENDING, "")
        pipe.hincrby(keys.METRICS, f"state:{State.CANCELLED.value}", 0)
        pipe.time()
        try:
            pipe.execute()
        except redis.exceptions.NoPermissionError:
            raise ConfigError("REDIS_URL", NO_RIGHTS) from None

    def _finish(self, record: MessageRecord, *, by: str, why: str, reason: str) -> str:
        """``ledger_finish`` queued → cancelled; 'ok' or the state the message had."""
        mid = record.message_id
        self._may_cancel(mid)
        now = utc_now_iso()
        fields = {"cancelled_by": by, "cancel_reason": why, "updated_at": now}
        entry = {"state": State.CANCELLED.value, "at": now, "reason": reason, "by": by}
        message = keys.message(mid)
        result = self._barrier.run_script(
            self._redis,
            self._script,
            [
                message,
                keys.history(mid),
                keys.DEAD_LETTERS,
                keys.dead_letter(mid),
                keys.SENDING,
                keys.METRICS,
                *keys.callback_keys(),
                message,  # no job: the script touches no list, ACLs still check the key
            ],
            [
                State.QUEUED.value,
                State.CANCELLED.value,
                json.dumps(fields),
                json.dumps(entry),
                "",
                time.time(),
                self._ttl_s,
                "{}",
                uuid.uuid4().hex,
                "",
            ],
        )
        return decoded(result)


def _part_why(state: str) -> str:
    try:
        known = State(state)
    except ValueError:
        return f"is {state}"
    return SCHEDULED_WHY if known is State.SCHEDULED else why_not(known)
