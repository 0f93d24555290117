"""Reconciler: what dead workers left behind, so no accepted message is lost or sent twice.

A live worker runs it every ``reconcile_interval_s`` under a Redis lock (one worker at a time):

1. A job id stuck in a lane's intermediate list (a worker died between taking it and starting
   it) goes back to the front of its lane. Nothing was sent: the message is still ``queued``.
2. A job in RQ's started registry whose worker is dead and whose message is still ``queued``
   (death between starting the job and claiming the message) goes back to its lane too.
3. A message ``sending`` whose worker is dead, or claimed longer ago than any send can take,
   becomes ``unknown``: the request may have reached AllMySMS, so it is never resent without an
   operator's decision. Except when its claim is still held (the worker was waiting for its
   rate-limit turn and had not started posting, see :meth:`Ledger.release`): then it goes back
   to the front of its lane, provably unsent.
4. A message parked for a later retry round (``smsq:later``, see :meth:`Ledger.park_for_later`)
   whose round is due goes back to the front of its lane as a fresh job.

Requeueing is always safe: the claim in :mod:`worker.store.ledger` lets a message be sent only once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from producers import keys
from producers.states import State
from producers.store import decoded
from worker.store.ledger import Ledger


if TYPE_CHECKING:
    from collections.abc import Callable

    from redis import Redis
    from rq.queue import Queue

log = structlog.get_logger()

OWN_ORPHAN_AFTER_S = 10.0
"""A claim of this worker that is older than this and that no send slot works on is settled
(:meth:`Reconciler.own_orphans`): longer than any gap between a slot's bookkeeping and Redis."""

_LATER_BATCH = 500
"""Later retry rounds (and held messages) read per step."""
_DUE_REASON = "due again: a later retry round, or the end of a hold for the sending hours"
_LATER_BUDGET_S = 2.0
"""How long one reconciler run keeps moving due messages back (the rest on the next run): a
marketing campaign held overnight goes back to its lanes at thousands per second."""


@dataclass(frozen=True, slots=True)
class Report:
    requeued_stuck: int = 0
    requeued_abandoned: int = 0
    released: int = 0
    unknown: int = 0
    later_due: int = 0


class Reconciler:
    def __init__(
        self,
        connection: Redis,
        ledger: Ledger,
        queues: list[Queue],
        *,
        dead_after_s: float,
        interval_s: float,
        stale_after_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        """Wall-clock epoch seconds: what is due (tests pass a fake one)."""
        self._redis = connection
        self._ledger = ledger
        self._queues = queues
        self._dead_after_s = dead_after_s
        self._interval_s = interval_s
        self._stale_after_s = stale_after_s
        self._next_run = 0.0

    def maybe_run(self, in_flight: Callable[[], frozenset[str]] | None = None) -> Report | None:
        """Run if this worker's interval has passed and no other worker holds the lock; every
        interval, settle this worker's own left-behind claims first (given ``in_flight``)."""
        now = time.monotonic()
        if now < self._next_run:
            return None
        self._next_run = now + self._interval_s
        if in_flight is not None:
            self.own_orphans(in_flight)
        lock_ms = max(int(self._interval_s * 1000) - 50, 100)
        if not self._redis.set(keys.RECONCILE_LOCK, "1", nx=True, px=lock_ms):
            return None
        return self.run()

    def run(self) -> Report:
        stuck = sum(self._requeue_stuck(q) for q in self._queues)
        abandoned = sum(self._requeue_abandoned(q) for q in self._queues)
        released, unknown = self._orphaned_sends()
        report = Report(
            requeued_stuck=stuck,
            requeued_abandoned=abandoned,
            released=released,
            unknown=unknown,
            later_due=self._later_due(),
        )
        if report != Report():
            log.warning(
                "sms.reconcile.done",
                requeued_stuck=report.requeued_stuck,
                requeued_abandoned=report.requeued_abandoned,
                released=report.released,
                unknown=report.unknown,
                later_due=report.later_due,
            )
        return report

    def _later_due(self) -> int:
        """Put messages whose later retry round (or hold) is due back on their lane."""
        now = self._clock()
        stop_at = time.monotonic() + _LATER_BUDGET_S
        moved = 0
        while time.monotonic() < stop_at:
            due = self._redis.zrangebyscore(keys.LATER, "-inf", now, start=0, num=_LATER_BATCH)
            for raw in due:
                mid = decoded(raw)  # type: ignore[arg-type]
                outcome = self._ledger.requeue_due(
                    mid, now=now, actor="reconciler", reason=_DUE_REASON
                )
                if outcome == State.QUEUED.value:
                    moved += 1
                    log.info("sms.send.later_due", message_id=mid, state="queued")
            if len(due) < _LATER_BATCH:
                break
        return moved

    def _requeue_stuck(self, queue: Queue) -> int:
        seen_key = keys.first_seen(queue.name)
        ids = [decoded(i) for i in self._redis.lrange(queue.intermediate_queue_key, 0, -1)]
        seen = {decoded(k): float(v) for k, v in self._redis.hgetall(seen_key).items()}
        gone = [job for job in seen if job not in ids]
        if gone:
            self._redis.hdel(seen_key, *gone)
        now = time.time()
        requeued = 0
        for jid in ids:
            first = seen.get(jid)
            if first is None:
                self._redis.hset(seen_key, jid, repr(now))
                continue
            if now - first < self._dead_after_s:
                continue
            self._redis.hdel(seen_key, jid)
            # LREM decides the race with a worker that is only slow: whoever removes the id owns it.
            if not self._redis.lrem(queue.intermediate_queue_key, 1, jid):
                continue
            if self._still_queued(jid):
                self._redis.lpush(queue.key, jid)
                requeued += 1
                log.warning("sms.reconcile.requeued", job_id=jid, reason="stuck after dequeue")
        return requeued

    def _requeue_abandoned(self, queue: Queue) -> int:
        registry = queue.started_job_registry
        requeued = 0
        for member in self._redis.zrange(registry.key, 0, -1):
            entry = decoded(member)  # type: ignore[arg-type]
            jid = entry.split(":", 1)[0]
            worker = self._redis.hget(keys.rq_job(jid), "worker_name")
            if worker and self._redis.exists(keys.alive(decoded(worker))):
                continue
            if worker is None and self._redis.exists(keys.rq_job(jid)):
                continue  # not started by an smsq worker: RQ's own cleanup decides
            if not self._redis.zrem(registry.key, entry):
                continue
            if self._still_queued(jid):
                pipe = self._redis.pipeline()
                pipe.hset(keys.rq_job(jid), "status", "queued")
                pipe.lpush(queue.key, jid)
                pipe.execute()
                requeued += 1
                log.warning(
                    "sms.reconcile.requeued",
                    job_id=jid,
                    reason="worker died before the send started",
                )
            else:
                self._redis.delete(keys.rq_job(jid))
        return requeued

    def _orphaned_sends(self) -> tuple[int, int]:
        """Settle the claims of dead (or stalled) workers: (released unsent, now unknown)."""
        released = unknown = 0
        now = time.time()
        entries: list[tuple[bytes, float]] = self._redis.zrange(  # type: ignore[assignment]
            keys.SENDING, 0, -1, withscores=True
        )
        for raw, claimed_at in entries:
            mid = decoded(raw)
            fields = self._redis.hmget(
                keys.message(mid), ["claimed_by", "key", "lane", "job_id", "awaiting_turn"]
            )
            worker, key, lane, jid, holder = (decoded(v) if v is not None else "" for v in fields)
            alive = bool(worker) and bool(self._redis.exists(keys.alive(worker)))
            if alive and now - claimed_at < self._stale_after_s:
                continue
            if holder and self._ledger.release(
                mid,
                holder=holder,
                actor="reconciler",
                reason=f"worker {holder} stopped while waiting for its rate-limit turn; "
                "nothing was sent, requeued",
            ):
                released += 1
                log.warning(
                    "sms.reconcile.requeued",
                    key=key,
                    lane=lane,
                    job_id=jid,
                    reason="worker died before posting",
                )
                continue
            # A live worker past the longest possible send could not record its outcome (Redis
            # refused the write, say): the message must not stay "sending" forever either.
            error = "worker died during the send" if not alive else "send outlived its timeout"
            reason = (
                (
                    f"worker {worker or '?'} stopped during the send; the request may have "
                    "reached AllMySMS"
                )
                if not alive
                else (
                    f"worker {worker} did not record an outcome within "
                    f"{self._stale_after_s:.0f} s; the request may have reached AllMySMS"
                )
            )
            if self._ledger.finish(
                mid,
                State.UNKNOWN,
                {"error": error},
                reason=reason,
                record={"key": key, "lane": lane, "job_id": jid},
            ):
                unknown += 1
                log.warning(
                    "sms.send.outcome_unknown", key=key, lane=lane, state="unknown", error=error
                )
            else:
                self._redis.zrem(keys.SENDING, mid)
        return released, unknown

    def own_orphans(self, in_flight: Callable[[], frozenset[str]]) -> tuple[int, int]:
        """Settle claims of this live worker that none of its send slots works on any more:
        (released unsent, now unknown).

        Only a Redis failover leaves such a claim: the write that ended it (a give-back, an
        outcome) reached the old primary but not the new one, while the claim itself had been
        replicated. Without this the claim of a live worker would wait for ``stale_after_s``.
        A held claim (nothing posted) goes back to its lane; one whose posting had started
        becomes ``unknown``, as if the worker had died. ``in_flight`` is read after Redis, so a
        send that claims meanwhile is seen there (its slot adds it before claiming).
        """
        worker = self._ledger.worker_name
        now = time.time()
        entries: list[tuple[bytes, float]] = self._redis.zrangebyscore(  # type: ignore[assignment]
            keys.SENDING, "-inf", now - OWN_ORPHAN_AFTER_S, withscores=True
        )
        mine: list[str] = []
        for raw, _ in entries:
            mid = decoded(raw)
            claimed_by = self._redis.hget(keys.message(mid), "claimed_by")
            if claimed_by is not None and decoded(claimed_by) == worker:
                mine.append(mid)
        busy = in_flight()
        released = unknown = 0
        for mid in mine:
            if mid in busy:
                continue
            if self._ledger.release(
                mid,
                holder=worker,
                actor="reconciler",
                reason="claim left behind by a Redis failover; nothing was sent, requeued",
            ):
                released += 1
                log.warning("sms.reconcile.requeued", reason="claim left behind by a failover")
                continue
            fields = self._redis.hmget(keys.message(mid), ["key", "lane", "job_id"])
            key, lane, jid = (decoded(v) if v is not None else "" for v in fields)
            if self._ledger.finish(
                mid,
                State.UNKNOWN,
                {"error": "outcome lost in a Redis failover"},
                reason=f"worker {worker} lost the outcome of this send in a Redis failover; "
                "the request may have reached AllMySMS",
                record={"key": key, "lane": lane, "job_id": jid},
            ):
                unknown += 1
                log.warning("sms.send.outcome_unknown", key=key, lane=lane, state="unknown")
        return released, unknown

    def _still_queued(self, jid: str) -> bool:
        """True when nothing was sent for this job: its message is ``queued`` (or it is not an
        smsq message at all, so a worker must see it to dead-letter it)."""
        mid = keys.message_id_of_job(jid)
        if mid is None:
            return True
        state = self._redis.hget(keys.message(mid), "state")
        return state is None or decoded(state) == State.QUEUED.value
