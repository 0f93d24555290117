"""The RQ worker smsq runs: lanes drained in priority order without a lossy dequeue path,
JSON only, and no callable but ``send_sms``.

Why not plain rq: a worker listening on several queues pops with BLPOP and keeps no trace of the
job until it starts, so a crash in between loses it (rq 3.0 still does this). Here every lane is
read with LMOVE into that lane's intermediate list (:mod:`worker.send.lanes`), where the job stays
until its outcome is recorded, and the worker blocks on a wake list instead of on the queues.

Why not RQ's execution loop: it runs one job at a time and spends about 25 Redis round trips
of bookkeeping on each. A send waits on AllMySMS for nearly all its time, so this worker keeps
``SMSQ_SEND_SLOTS`` sends in flight (:mod:`worker.send.slots`) and spends three round trips per
job: take (shared by a batch), claim, and the outcome script, which also drops the job. RQ still
registers the worker, runs its maintenance and handles suspension and signals.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from rq.exceptions import StopRequested
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import FailedJobRegistry, clean_registries
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import SimpleWorker
from rq.worker_registration import clean_worker_registry

from producers import keys
from producers.contract import LANE_ORDER, SEND_SMS_JOB, Lane, queue_name
from producers.enqueue import Producer
from producers.keys import MESSAGE_ID_PATTERN
from producers.redis_errors import REDIS_UNAVAILABLE_ERRORS, redis_address
from producers.states import State
from producers.store import decoded
from worker import __version__
from worker.logs import bind_message
from worker.send.crashpoints import arm, crash_point
from worker.send.heartbeat import Heartbeat
from worker.send.intake import INTAKE_BATCH, Intake, Recovered
from worker.send.lanes import Lanes, Taken
from worker.send.reconciler import Reconciler
from worker.send.retries import backoff_s
from worker.send.runtime import Runtime
from worker.send.sender import OUTCOME_WRITE_RETRY_S
from worker.send.slots import SendSlots
from worker.store.refused import refuse_job
from worker.store.workers import register


if TYPE_CHECKING:
    from redis import Redis

log = structlog.get_logger()

RESULT_TTL_S = 0
"""RQ's own success results are dropped at once: smsq's outcome store is the record."""
SUSPENSION_CHECK_S = 1.0
"""How often the loop looks at RQ's suspend flag (``rq suspend``)."""
HEARTBEAT_EVERY_S = 5.0
"""Least time between two RQ worker-registry heartbeats (its TTL is ``WORKER_TTL_S`` + 60)."""
INTAKE_POLL_S = 0.05
"""Least time between two intake drains while jobs keep coming."""
MAINTENANCE_INTERVAL_S = 60
"""How often a worker runs RQ's registry cleanup (abandoned and stuck jobs)."""
WORKER_TTL_S = 60
REDIS_RETRY_INITIAL_S = 0.5
REDIS_RETRY_MAX_S = 10.0
"""Back-off while Redis is unreachable: first and longest wait between attempts."""
MISSING_JOB_REASON = "job id in the queue has no job hash or no data (not written by smsq?)"


class SmsWorker(SimpleWorker):
    """Runs ``send_sms`` jobs in-process, so the HTTP keep-alive connection survives jobs."""

    def __init__(self, queues: list[Queue], *, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(
            queues,
            name=runtime.worker_name,
            connection=runtime.redis,
            serializer=JSONSerializer,
            log_job_description=False,
            default_result_ttl=RESULT_TTL_S,
            maintenance_interval=MAINTENANCE_INTERVAL_S,
            worker_ttl=WORKER_TTL_S,
            **kwargs,
        )
        self.runtime = runtime
        settings = runtime.settings
        self.intake = Intake(
            runtime.redis,
            Producer(runtime.redis, settings.producer),
            ttl_s=settings.producer.outcome_ttl_s,
            worker_name=runtime.worker_name,
            max_bytes=settings.intake_max_bytes,
        )
        self._sent = 0
        self._sent_lock = threading.Lock()
        self.heartbeat_thread = Heartbeat(
            runtime.redis,
            runtime.worker_name,
            ttl_s=settings.worker_dead_after_s,
            board=self._board_fields,
        )
        self.reconciler = Reconciler(
            runtime.redis,
            runtime.ledger,
            queues,
            dead_after_s=settings.worker_dead_after_s,
            interval_s=settings.reconcile_interval_s,
            stale_after_s=settings.job_timeout_s + OUTCOME_WRITE_RETRY_S,
        )
        self.lanes = Lanes(
            runtime.redis, [q.key for q in queues], [keys.lane_of_queue(q.name) for q in queues]
        )
        self.slots = SendSlots(settings.send_slots, self._send)
        self._cold_stop = False
        self._outages = 0
        """Consecutive takes that met a Redis outage (sets the back-off)."""
        self._intake_due = 0.0
        self._suspension_due = 0.0
        self._heartbeat_due = 0.0
        arm(settings.crash_at)

    def _board_fields(self) -> dict[str, str]:
        """What the workers board shows of this process at each heartbeat."""
        with self._sent_lock:
            sent = self._sent
        return {"busy": str(len(self.slots.in_flight())), "sent": str(sent)}

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        register(
            self.connection,
            self.name,
            {
                "host": socket.gethostname(),
                "pid": str(os.getpid()),
                "lanes": ",".join(keys.lane_of_queue(q.name) for q in self.queues),
                "slots": str(self.slots.size),
                "version": __version__,
            },
        )
        self.heartbeat_thread.start()
        super().bootstrap(*args, **kwargs)
        self._recover_intake(legacy=True)

    def work(
        self, burst: bool = False, logging_level: str | None = None, *args: Any, **kwargs: Any
    ) -> bool:
        """Drain the lanes with ``settings.send_slots`` sends in flight; return whether any job
        ran.

        Replaces RQ's one-job-at-a-time loop (RQ's registration, maintenance, suspension and
        signals are kept). In burst mode it returns once the lanes are empty and no send is in
        flight; otherwise it waits on the wake list between jobs.
        """
        self.bootstrap(logging_level or "INFO")
        self._install_signal_handlers()  # type: ignore[no-untyped-call]
        self._mirror_blacklist()  # before the first send, when the list is due
        self.slots.start()
        taken_total = 0
        idle_before_take = False
        try:
            while not self._stop_requested:
                self._check_suspension(burst)
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                free = self.slots.wait_free(self.runtime.settings.idle_wait_s)
                if self._stop_requested or free == 0:
                    continue
                batch = self._take(free)
                if batch is None:
                    idle_before_take = False
                    continue  # Redis unavailable: waited, try again
                if batch:
                    idle_before_take = False
                    crash_point("after_dequeue")
                    for taken in batch:
                        self._dispatch(taken)
                    taken_total += len(batch)
                    self._after_dispatch()
                    self.heartbeat()
                    if not burst and len(batch) < free:
                        # This take emptied the lanes: wait for the next enqueue's wake-up
                        # rather than asking again at once. That take and the intake drain
                        # after it would compete for the GIL and the cores with the send just
                        # handed to a slot (the idle enqueue→provider latency).
                        self._wait_for_work()
                    continue
                if burst:
                    # Done only when a take found nothing although every slot was already idle
                    # before it: a slot that finishes by putting its message back in the lane
                    # (provider busy, rate-limit backlog) does so before it becomes idle.
                    if idle_before_take:
                        break
                    idle_before_take = self.slots.wait_idle(self.runtime.settings.idle_wait_s)
                    continue
                self._wait_for_work()
        except StopRequested:
            pass
        finally:
            if not self._cold_stop:
                self.slots.wait_idle(None)
            self.slots.stop()
            self.teardown()
        return bool(taken_total)

    def _take(self, free: int) -> list[Taken] | None:
        """Take up to ``free`` jobs; when the lanes are empty, drain the intake (and take what
        it enqueued) and run the reconciler if due.

        Taking comes first and a batch goes to the slots before any housekeeping
        (:meth:`_after_dispatch`), so an idle worker woken by an enqueue starts the send after
        one round trip.
        """
        try:
            batch = self.lanes.take(free)
            if not batch:
                if self._drain_intake(lanes_empty=True):
                    batch = self.lanes.take(free)
                self._reconcile()
        except REDIS_UNAVAILABLE_ERRORS as exc:
            self._outages += 1
            wait_s = backoff_s(
                self._outages, initial_s=REDIS_RETRY_INITIAL_S, max_s=REDIS_RETRY_MAX_S
            )
            log.warning("sms.worker.redis_unavailable", error=type(exc).__name__, retry_in_s=wait_s)
            time.sleep(wait_s)
            return None
        self._outages = 0
        return batch

    def _after_dispatch(self) -> None:
        """Housekeeping once a batch is in the slots' hands: the intake when due, the
        reconciler when due. A Redis outage here is the next take's to wait out."""
        try:
            self._drain_intake(lanes_empty=False)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("sms.worker.redis_unavailable", error=type(exc).__name__)
        self._reconcile()

    def _wait_for_work(self) -> None:
        """Idle: block on the wake list, which every enqueue feeds, for ``idle_wait_s``."""
        try:
            self.connection.blpop([keys.WAKE], timeout=self.runtime.settings.idle_wait_s)
        except REDIS_UNAVAILABLE_ERRORS:
            time.sleep(self.runtime.settings.idle_wait_s)

    def _dispatch(self, taken: Taken) -> None:
        """Hand a plain smsq job to a send slot; load and check anything else first."""
        if taken.message_id is not None:
            self.slots.submit(taken)
            return
        checked = self._checked(taken)
        if checked is not None:
            self.slots.submit(checked)

    def _checked(self, taken: Taken) -> Taken | None:
        """Load a job smsq did not write in its usual form through RQ; refuse anything but a
        well-formed ``send_sms`` job (it becomes a dead letter, nothing runs)."""
        try:
            result = Queue._fetch_dequeued_job(
                self.connection,
                taken.queue_key,
                taken.job_id,
                job_class=self.job_class,
                serializer=self.serializer,
            )
        except Exception as exc:  # noqa: BLE001 - a hostile job must not stop the worker
            self._refuse_missing(taken, f"job cannot be loaded ({type(exc).__name__})")
            return None
        if result is None:
            if self._handled_elsewhere(taken):
                return None
            self._refuse_missing(taken, MISSING_JOB_REASON)
            return None
        job, queue = result
        problem = refusal_reason(job)
        if problem is not None:
            self._refuse(job, queue, problem)
            return None
        return Taken(taken.queue_key, taken.job_id, job.args[0])

    def _handled_elsewhere(self, taken: Taken) -> bool:
        """A job id without its hash, for a message smsq knows: never a dead letter.

        * A second copy of a job whose message another job already took past ``queued`` (the
          reconciler requeued a job that was only slow, whose hash is gone now), or a stale copy
          of a ``queued`` message whose own job is live or that waits for a later round: dropped
          quietly.
        * The ``queued`` message's own job, its hash gone (a give-back's job deleted by a
          second give-back, before the fix of that): the message would never be sent, so it
          gets a fresh job (``sms.job.repaired``). A claim decides who sends, so a spare job
          can never send twice.
        """
        mid = keys.message_id_of_job(taken.job_id)
        if not mid:
            return False
        state, current = (
            _text(v) if v is not None else None
            for v in self.connection.hmget(keys.message(mid), ["state", "job_id"])
        )
        if state is None:
            return False
        if state == State.QUEUED.value:
            live = current is not None and current != taken.job_id
            if (live and current and self.connection.exists(keys.rq_job(current))) or (
                self.connection.zscore(keys.LATER, mid) is not None
            ):
                self.connection.lrem(taken.intermediate_key, 1, taken.job_id)
                log.info("sms.job.duplicate_dropped", job_id=taken.job_id, state=state)
                return True
            outcome, job_id = self.runtime.ledger.requeue(
                mid,
                allowed=frozenset({State.QUEUED}),
                reason=f"its job {taken.job_id} had lost its hash; a fresh job, nothing was sent",
                actor=f"worker {self.name}",
                front=True,
            )
            self.connection.lrem(taken.intermediate_key, 1, taken.job_id)
            log.warning("sms.job.repaired", job_id=taken.job_id, new_job_id=job_id, state=outcome)
            return True
        self.connection.lrem(taken.intermediate_key, 1, taken.job_id)
        log.info("sms.job.duplicate_dropped", job_id=taken.job_id, state=state)
        return True

    def _send(self, taken: Taken) -> None:
        """One send slot's work: send the message at most once, then drop the job.

        If Redis fails before the outcome is recorded, the job stays in its intermediate list:
        the reconciler puts it back if nothing was sent, or settles the claimed message.
        """
        if taken.message_id is None:  # pragma: no cover - _dispatch only submits checked jobs
            return
        with self._sent_lock:
            self._sent += 1
        bind_message({"message_id": taken.message_id})
        try:
            crash_point("after_start")
            result = self.runtime.sender.send(
                taken.message_id, job=(taken.intermediate_key, taken.job_id)
            )
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning(
                "sms.job.left_for_reconciler", job_id=taken.job_id, error=type(exc).__name__
            )
            return
        finally:
            structlog.contextvars.clear_contextvars()
        if result.job_done:
            return  # the outcome script dropped the job: 3 round trips for the whole send
        try:
            if not self.lanes.done(taken):
                log.warning(
                    "sms.job.kept",
                    job_id=taken.job_id,
                    state="queued",
                    reason="its message is still queued here: the send's answer came from "
                    "another Redis server (a failover); the job is back on its lane",
                )
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("sms.job.cleanup_failed", job_id=taken.job_id, error=type(exc).__name__)

    def _check_suspension(self, burst: bool) -> None:
        """RQ's ``smsq suspend`` check, at most once per ``SUSPENSION_CHECK_S``."""
        if time.monotonic() < self._suspension_due:
            return
        self._suspension_due = time.monotonic() + SUSPENSION_CHECK_S
        self.check_for_suspension(burst)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # RQ's worker-registry heartbeat, at most every HEARTBEAT_EVERY_S between jobs (the
        # alive key that the reconciler trusts is refreshed by its own thread). A Redis blip
        # must not stop the worker: the next pass waits the outage out.
        if timeout is None and pipeline is None:
            if time.monotonic() < self._heartbeat_due:
                return
            self._heartbeat_due = time.monotonic() + HEARTBEAT_EVERY_S
        try:
            super().heartbeat(timeout, pipeline)
        except REDIS_UNAVAILABLE_ERRORS:
            log.warning("sms.worker.heartbeat_failed")

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)
        except REDIS_UNAVAILABLE_ERRORS:
            log.warning("sms.worker.redis_unavailable", error="suspension check")

    def request_stop(self, signum: int, frame: Any) -> None:
        """Warm shutdown that only sets a flag, busy or idle.

        RQ raises ``StopRequested`` from the signal handler when idle; raised while the worker
        is inside a logging call, ``logging.Handler.handleError`` swallows it and the worker
        never stops. The dequeue loop checks the flag at least every ``idle_wait_s`` instead.
        """
        self._shutdown_requested_date = now()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        self.handle_warm_shutdown_request()  # type: ignore[no-untyped-call]
        self._stop_requested = True
        self.runtime.sender.stop_waiting()

    def request_force_stop(self, signum: int, frame: Any) -> None:
        """Cold shutdown: record every send in flight as ``unknown`` (a send still waiting for
        its rate-limit turn goes back to its lane instead), then exit at once."""
        if (
            self._shutdown_requested_date is not None
            and now() - self._shutdown_requested_date < timedelta(seconds=1)
        ):
            return  # RQ's rule: a duplicate of the first signal
        self._cold_stop = True
        for taken in self.slots.in_flight():
            self._abandon(taken)
        log.warning("sms.worker.cold_stop", in_flight=len(self.slots.in_flight()))
        raise SystemExit(1)

    def _abandon(self, taken: Taken) -> None:
        if taken.message_id is None:
            return
        mid = taken.message_id
        ledger = self.runtime.ledger
        try:
            if ledger.release(
                mid,
                holder=ledger.worker_name,
                actor=f"worker {self.name}",
                reason="worker stopped while waiting for its rate-limit turn; "
                "nothing was sent, requeued",
            ):
                return
            key, lane = (
                _text(v) for v in self.connection.hmget(keys.message(mid), ["key", "lane"])
            )
            ledger.finish(
                mid,
                State.UNKNOWN,
                {"error": "SystemExit"},
                reason="worker stopped during the send; the request may have reached AllMySMS",
                record={"key": key, "lane": lane, "job_id": taken.job_id},
            )
        except REDIS_UNAVAILABLE_ERRORS:
            log.error("sms.worker.cold_stop_unrecorded", job_id=taken.job_id)

    def _reconcile(self) -> None:
        try:
            if self.reconciler.maybe_run(self.runtime.sender.in_flight) is not None:
                self._recover_intake()
        except REDIS_UNAVAILABLE_ERRORS:
            log.warning("sms.reconcile.unavailable")
        watch = self.runtime.credits
        try:
            if watch is not None:
                watch.maybe_run()
        except REDIS_UNAVAILABLE_ERRORS:
            log.warning("sms.credits.unavailable", error="redis")
        poller = self.runtime.poller
        try:
            if poller is not None:
                poller.maybe_run()
        except REDIS_UNAVAILABLE_ERRORS:
            log.warning("sms.poll.unavailable", step="redis", error="redis")
        self._mirror_blacklist()

    def _mirror_blacklist(self) -> None:
        """AllMySMS's STOP list into the suppression list, when it is this worker's turn."""
        mirror, retention = self.runtime.blacklist, self.runtime.retention
        try:
            if mirror is not None:
                mirror.maybe_run()
            if retention is not None:
                retention.maybe_run()
        except REDIS_UNAVAILABLE_ERRORS:
            log.warning("sms.blacklist.unavailable", error="redis")
        try:
            if self.runtime.long_wait is not None:
                self.runtime.long_wait.maybe_run()
        except REDIS_UNAVAILABLE_ERRORS:
            log.warning("sms.lane.long_wait_unchecked", error="redis")

    def _recover_intake(self, *, legacy: bool = False) -> None:
        """Give back the intake entries stopped workers held (this worker holds the reconcile
        turn, or is starting)."""
        recovered = self.intake.recover(legacy=legacy)
        if recovered != Recovered():
            log.warning(
                "sms.intake.recovered", entries=recovered.returned, poisoned=recovered.poisoned
            )

    def teardown(self) -> None:
        try:
            super().teardown()  # type: ignore[no-untyped-call]
        except REDIS_UNAVAILABLE_ERRORS as exc:
            # RQ's death record: its worker key expires on its own (WORKER_TTL_S).
            log.warning("sms.worker.redis_unavailable", error=type(exc).__name__, step="teardown")
        self.heartbeat_thread.stop()

    def run_maintenance_tasks(self) -> None:
        """RQ's registry cleanup; during a Redis outage it is skipped until the next interval
        (the reconciler, not this cleanup, is what puts stuck sends right)."""
        try:
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        except REDIS_UNAVAILABLE_ERRORS as exc:
            self.last_cleaned_at = now()  # type: ignore[assignment]
            log.warning(
                "sms.worker.redis_unavailable", error=type(exc).__name__, step="maintenance"
            )

    def clean_registries(self) -> None:
        """RQ's registry maintenance, minus its intermediate-list cleanup: that one fails stuck
        jobs after a minute, where the reconciler puts them back in their lane (nothing was
        sent, so they must still go out)."""
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                clean_registries(queue, self._exc_handlers)
                clean_worker_registry(queue)
                queue.release_maintenance_lock()
        self.last_cleaned_at = now()  # type: ignore[assignment]

    def _drain_intake(self, *, lanes_empty: bool) -> int:
        """Enqueue what non-Python backends RPUSHed: whenever the lanes are empty, else at most
        every ``INTAKE_POLL_S``. Returns how many entries were taken."""
        if not lanes_empty and time.monotonic() < self._intake_due:
            return 0
        self._intake_due = time.monotonic() + INTAKE_POLL_S
        total = 0
        while True:
            taken = self.intake.drain()
            total += taken
            if taken < INTAKE_BATCH:
                return total

    def _refuse_missing(self, taken: Taken, reason: str) -> None:
        """A job id whose job hash is missing, empty or unloadable: a dead letter, never run."""
        self.connection.lrem(taken.intermediate_key, 1, taken.job_id)
        shown = refuse_job(
            self.connection,
            taken.job_id,
            reason,
            ttl_s=self.runtime.settings.producer.outcome_ttl_s,
            lane=keys.lane_of_queue(taken.queue_key),
        )
        log.warning("sms.job.refused", job_id=shown, reason=reason)

    def _refuse(self, job: Job, queue: Queue, reason: str) -> None:
        ttl_s = self.runtime.settings.producer.outcome_ttl_s
        with self.connection.pipeline() as pipe:
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            FailedJobRegistry(
                queue.name, connection=self.connection, serializer=JSONSerializer
            ).add(job, ttl=ttl_s, pipeline=pipe)
            pipe.execute()
        shown = refuse_job(
            self.connection, job.id, reason, ttl_s=ttl_s, lane=keys.lane_of_queue(queue.name)
        )
        log.warning("sms.job.refused", job_id=shown, reason=reason)


def refusal_reason(job: Job) -> str | None:
    """Why smsq will not run ``job``, or None. Nothing in the job is imported or called."""
    try:
        func_name = job.func_name
        args, kwargs = job.args, job.kwargs
    except Exception as exc:  # noqa: BLE001 - any undecodable payload is refused, whatever broke
        return f"job data is not readable JSON job data ({type(exc).__name__})"
    if func_name != SEND_SMS_JOB:
        return f"job names a foreign callable {str(func_name)[:100]!r}; only {SEND_SMS_JOB} runs"
    if (
        kwargs
        or len(args) != 1
        or not isinstance(args[0], str)
        or not MESSAGE_ID_PATTERN.fullmatch(args[0])
    ):
        return "send_sms job arguments are not one message id"
    if job._success_callback_name or job._failure_callback_name or job._stopped_callback_name:
        return "job carries callbacks; smsq jobs never do"
    if job.webhooks:
        return "job carries webhooks; smsq jobs never do"
    if job.instance is not None:
        return "job names an instance method"
    return None


def _text(value: bytes | str | None) -> str:
    return "" if value is None else decoded(value, "replace")


def lane_queues(connection: Redis, lanes: Iterable[Lane] = LANE_ORDER) -> list[Queue]:
    """The RQ queues of ``lanes``, in priority order."""
    return [
        Queue(queue_name(lane), connection=connection, serializer=JSONSerializer) for lane in lanes
    ]


def wait_for_redis(connection: Redis) -> None:
    """Before a worker registers: wait, however long, until Redis answers, so a worker started
    before its Redis, or during an outage, starts once Redis is back."""
    attempt = 0
    while True:
        try:
            connection.ping()
            return
        except REDIS_UNAVAILABLE_ERRORS as exc:
            attempt += 1
            wait_s = backoff_s(attempt, initial_s=REDIS_RETRY_INITIAL_S, max_s=REDIS_RETRY_MAX_S)
            log.warning(
                "sms.worker.waiting_for_redis",
                address=redis_address(connection),
                error=type(exc).__name__,
                retry_in_s=wait_s,
            )
            time.sleep(wait_s)


def build_worker(runtime: Runtime, lanes: Iterable[Lane] = LANE_ORDER) -> SmsWorker:
    ordered = [lane for lane in LANE_ORDER if lane in set(lanes)]
    return SmsWorker(lane_queues(runtime.redis, ordered), runtime=runtime)
