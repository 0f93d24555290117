"""Write side of the outcome store: the send guard (claim) and state transitions, atomically.

Every state change is one Lua script: it checks the current state (compare-and-set), writes the
fields, appends the history entry and, for a terminal non-success, records the dead letter, so a
message can never hold two terminal states and a key can be claimed for sending only once.
A message reaching a terminal state also indexes its smsIds (for delivery receipts and replies)
and, when its request has a callback_url, adds a ``message.final`` event to the callback outbox,
in the script of the transition itself, so neither can be missed. The scripts are
``worker/store/lua/ledger_*.lua``; their headers list the KEYS and ARGV passed here, in order.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.durability import Barrier
from producers.enqueue import job_fields
from producers.records import utc_now_iso
from producers.states import DEAD_LETTER_STATES, State
from producers.store import decoded
from worker.store import lua
from worker.store.refused import refuse_job


if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: str
    """``claimed``, ``expired``, ``missing``, or the state the message already had."""
    request: dict[str, Any] | None = None
    expires_at: float | None = None
    """When ``valid_for_s`` runs out (epoch seconds), for a claimed message that has one."""


class Ledger:
    """State changes of messages, each one atomic and checked against the expected state."""

    def __init__(
        self, connection: Redis, *, ttl_s: int, worker_name: str, barrier: Barrier | None = None
    ) -> None:
        self._redis = connection
        self._ttl_s = ttl_s
        self._worker = worker_name
        self._barrier = barrier or Barrier()
        """Every transition waits for it (``SMSQ_REDIS_WAIT_REPLICAS``): a claim or an
        outcome a failover could lose is never acted upon as if it held."""
        self._claim = connection.register_script(lua.load("ledger_claim"))
        self._transition = connection.register_script(lua.load("ledger_finish"))
        self._requeue = connection.register_script(lua.load("ledger_requeue"))
        self._release = connection.register_script(lua.load("ledger_release"))
        self._start_posting = connection.register_script(lua.load("ledger_start_posting"))
        self._later = connection.register_script(lua.load("ledger_later"))
        self._later_due = connection.register_script(lua.load("ledger_later_due"))

    @property
    def worker_name(self) -> str:
        return self._worker

    @property
    def barrier(self) -> Barrier:
        return self._barrier

    def _run(self, script: Script, keys: list[Any], args: list[Any]) -> Any:
        """Run a transition's script behind the durability barrier.

        Raises:
            NotReplicatedError: the script ran but too few replicas have it yet.
        """
        return self._barrier.run_script(self._redis, script, keys, args)

    def claim(self, message_id: str, *, hold: bool = False) -> Claim:
        """Take the send guard: ``queued`` → ``sending``, or ``expired`` past ``valid_for_s``.

        Only one caller, ever, gets ``claimed`` for a message: a second job, an RQ re-run or a
        duplicate enqueue all find the state already moved on and send nothing.

        With ``hold`` (the send will first wait for its rate-limit turn), the claim is marked
        not posted yet: if the worker dies while waiting, :meth:`release` gives the message
        back to its lane instead of leaving it ``unknown``. Call :meth:`start_posting` before
        the first POST.
        """
        raw = self._run(
            self._claim,
            [*_keys(message_id), *keys.callback_keys()],
            [time.time(), utc_now_iso(), self._ttl_s, self._worker, uuid.uuid4().hex, _flag(hold)],
        )
        outcome = decoded(raw[0])
        if outcome != "claimed":
            return Claim(outcome)
        expires = decoded(raw[2]) if len(raw) > 2 else ""
        return Claim(outcome, json.loads(decoded(raw[1])), float(expires) if expires else None)

    def finish(
        self,
        message_id: str,
        state: State,
        fields: dict[str, Any],
        *,
        reason: str,
        record: dict[str, str],
        expected: State = State.SENDING,
        metrics: dict[str, int] | None = None,
        actor: str | None = None,
        job: tuple[str, str] | None = None,
    ) -> bool:
        """Move a message from ``expected`` to terminal ``state``; False if it was not there.

        Args:
            fields: record fields to set (None values are skipped).
            reason: short operator-facing reason, stored in history and in the dead letter.
            record: identifying fields of the message (key, lane, job_id) for the dead letter.
            job: ``(intermediate list, job id)`` of the job whose send this ends: dropped in
                the same script (a worker's last round trip for the job).
        """
        now = utc_now_iso()
        clean = {k: _field(v) for k, v in fields.items() if v is not None}
        clean["updated_at"] = now
        entry: dict[str, Any] = {"state": state.value, "at": now, "reason": reason}
        if actor:
            entry["by"] = actor
        for name in ("provider_status", "attempts", "error"):
            if fields.get(name) is not None:
                entry[name] = fields[name]
        dead = ""
        if state in DEAD_LETTER_STATES:
            dead = json.dumps(
                {
                    "dead_id": message_id,
                    "kind": "message",
                    "state": state.value,
                    "reason": reason,
                    "at": now,
                    "message_id": message_id,
                    "provider_status": fields.get("provider_status") or "",
                    **{k: record.get(k, "") for k in ("key", "lane", "job_id")},
                }
            )
        # Without a job the script touches no intermediate list, but Redis still checks every
        # declared key against the caller's ACL: '' matches no key pattern, so name the
        # message's own hash (already declared, never used as a list) instead.
        intermediate, job_id = job or (keys.message(message_id), "")
        result = self._run(
            self._transition,
            [*_keys(message_id), *keys.callback_keys(), intermediate],
            [
                expected.value,
                state.value,
                json.dumps(clean),
                json.dumps(entry),
                dead,
                time.time(),
                self._ttl_s,
                json.dumps(metrics or {}),
                uuid.uuid4().hex,
                job_id,
            ],
        )
        return decoded(result) == "ok"

    def requeue(
        self,
        message_id: str,
        *,
        allowed: frozenset[State],
        reason: str,
        actor: str,
        front: bool = False,
    ) -> tuple[str, str | None]:
        """Put a message back in its lane as a fresh RQ job, if its state is in ``allowed``.

        Only states where AllMySMS provably sent nothing may be allowed; the caller decides.

        Returns:
            ``("queued", job_id)``, or ``(current state or "missing", None)`` when refused.
        """
        now = utc_now_iso()
        job = job_fields(message_id, "", now)
        raw = self._run(
            self._requeue,
            [*_keys(message_id), keys.WAKE],
            [
                json.dumps(sorted(s.value for s in allowed)),
                now,
                self._ttl_s,
                reason,
                actor,
                "1" if front else "0",
                json.dumps(job),
            ],
        )
        outcome = decoded(raw[0])
        return (outcome, decoded(raw[1])) if outcome == "queued" else (outcome, None)

    def later_rounds(self, message_id: str) -> tuple[int, float | None]:
        """Later retry rounds already parked for a message, and when the first one was
        (epoch seconds; None before the first)."""
        rounds, since = self._redis.hmget(keys.message(message_id), ["later_rounds", "later_since"])
        return (int(rounds) if rounds else 0, float(since) if since else None)

    def park_for_later(
        self,
        message_id: str,
        *,
        due: float,
        since: float,
        reason: str,
        actor: str,
        attempts: int,
        error: str,
        hold: str = "",
    ) -> bool:
        """``sending`` → ``queued`` with ``next_attempt_at``, off every lane until ``due`` (the
        reconciler then puts a fresh job on it); False when this worker does not hold it.

        ``hold`` names why a message is held before any attempt (``sending_hours``): such a
        hold counts no later retry round and keeps ``attempts`` and ``error`` as they were."""
        now = utc_now_iso()
        due_iso = datetime.fromtimestamp(due, UTC).isoformat(timespec="seconds")
        result = self._run(
            self._later,
            [keys.message(message_id), keys.history(message_id), keys.SENDING, keys.LATER],
            [
                now,
                self._ttl_s,
                reason,
                actor,
                repr(due),
                due_iso,
                repr(since),
                self._worker,
                attempts,
                error,
                hold,
            ],
        )
        return decoded(result) == "ok"

    def requeue_due(self, message_id: str, *, now: float, reason: str, actor: str) -> str:
        """Put a message whose later round is due back on its lane (at the front).

        Returns:
            ``queued``, ``notdue`` (not due or not in the later set), ``missing`` or the state
            the message had (cancelled, expired...: the entry is only dropped).
        """
        now_iso = utc_now_iso()
        raw = self._run(
            self._later_due,
            [*_keys(message_id), keys.WAKE, keys.LATER],
            [
                json.dumps([State.QUEUED.value]),
                now_iso,
                self._ttl_s,
                reason,
                actor,
                "1",
                json.dumps(job_fields(message_id, "", now_iso)),
                message_id,
                repr(now),
            ],
        )
        return decoded(raw[0])

    def start_posting(self, message_id: str) -> bool:
        """End a held claim's wait: True when this worker still holds the message and may
        post; False when it was released meanwhile (the worker must post nothing)."""
        return bool(self._run(self._start_posting, [keys.message(message_id)], [self._worker]))

    def release(
        self, message_id: str, *, holder: str, reason: str, actor: str, unposted: bool = False
    ) -> str | None:
        """Give a held claim of ``holder`` back to its lane, at the front, as a fresh job.

        With ``unposted`` (only the holder itself may say so: it knows it posted nothing), a
        claim whose hold already ended is given back too, as long as ``holder`` claimed it.

        Safe against the holder itself: either this runs first and the holder's
        :meth:`start_posting` answers False, or the holder started posting and this refuses.

        Returns:
            The new job id, or None when the message is not held by ``holder`` (it may have
            been posted: the caller settles it as before).
        """
        now = utc_now_iso()
        raw = self._run(
            self._release,
            [*_keys(message_id), keys.WAKE],
            [
                json.dumps([State.SENDING.value]),
                now,
                self._ttl_s,
                reason,
                actor,
                "1",
                json.dumps(job_fields(message_id, "", now)),
                holder,
                _flag(unposted),
            ],
        )
        return decoded(raw[1]) if decoded(raw[0]) == "queued" else None

    def dead_letter_job(self, message_id: str, reason: str) -> None:
        """Record a job whose message no longer exists."""
        refuse_job(
            self._redis, keys.job_id(message_id), reason, ttl_s=self._ttl_s, message_id=message_id
        )

    def count(self, metrics: dict[str, int]) -> None:
        """Add to the monotonic counters behind ``smsq stats`` and ``/metrics``."""
        if metrics:
            pipe = self._redis.pipeline(transaction=False)
            for name, increment in metrics.items():
                pipe.hincrby(keys.METRICS, name, increment)
            pipe.execute()


def _keys(message_id: str) -> list[str]:
    return [
        keys.message(message_id),
        keys.history(message_id),
        keys.DEAD_LETTERS,
        keys.dead_letter(message_id),
        keys.SENDING,
        keys.METRICS,
    ]


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _field(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
