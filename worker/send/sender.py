"""The send use case: claim the key, build the flux, POST with retries, classify, record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog
import tenacity
from rq.timeouts import JobTimeoutException

from producers import keys
from producers.contract import SendRequest
from producers.errors import (
    MisdirectedError,
    NotReplicatedError,
    NotSentError,
    OutcomeUnknownError,
    ProviderBusyError,
)
from producers.hours import HELD_FOR_HOURS, NoCommonWindowError, SendingHours
from producers.marketing import Purpose
from producers.optouts import OPTED_OUT, OptOuts, Source
from producers.phones import mask_phone
from producers.redis_errors import REDIS_UNAVAILABLE_ERRORS
from producers.states import State
from producers.store import decoded
from worker.allmysms.client import PUSH_BACK_STATUSES, AllMySmsClient, ProviderReply
from worker.allmysms.codes import classify
from worker.allmysms.payload import build_flux
from worker.send.crashpoints import crash_point
from worker.send.ratelimit import RateLimitBacklogError, RateLimiter, priority_of
from worker.send.retries import Backoff, LaterRetry
from worker.store.control import Switch
from worker.store.ledger import Ledger
from worker.store.stats import latency_bucket


log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one job did, for the job's return value and tests."""

    state: str
    provider_status: int | None = None
    attempts: int = 0
    job_done: bool = False
    """The outcome script also dropped the job (its intermediate entry and hash)."""


@dataclass(slots=True)
class _Send:
    """The state of one send in progress (a process runs several send slots at once)."""

    message_id: str
    job: tuple[str, str] | None
    """The job's intermediate list and id, dropped by the script that records the outcome."""
    request: SendRequest
    ids: dict[str, str]
    """Fields recorded with every transition: key, lane, job id."""
    started: float
    """``time.monotonic()`` when the claim succeeded."""
    cost: int
    """Rate-limit cost of one attempt: segments x recipients."""
    priority: int
    """The lane's rate-limit class: urgent turns are booked ahead of default and bulk ones."""
    limit_deadline: float
    """When waiting for a rate-limit turn stops (the send's wait budget)."""
    turn_taken: bool
    """The first attempt's turn is waited for under the held claim (by ``_wait_first_turn``),
    so the first ``_attempt`` must not wait again."""
    held: bool = False
    """The claim is held (not posted yet): :meth:`Ledger.start_posting` ends it before the first
    POST. With the rate limit (its first turn is waited for meanwhile) or the durability
    barrier (the start of posting must be durable too)."""
    expires_at: float | None = None
    """When ``valid_for_s`` runs out (epoch seconds): past it, nothing may leave."""
    attempts: int = 0
    latency_s: float | None = None
    """AllMySMS's answer time on the last attempt that reached it."""
    opted_out: tuple[str, ...] = ()
    """Recipients dropped just before the POST: they opted out while the message waited."""

    def expired(self) -> bool:
        return self.expires_at is not None and time.time() > self.expires_at

    @property
    def lane(self) -> str:
        return self.ids["lane"]


class Sender:
    """Sends one message at most once. Built once per worker process."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        client: AllMySmsClient,
        retrying: Callable[[], tenacity.Retrying],
        switch: Switch,
        limiter: RateLimiter | None = None,
        on_credits: Callable[[int], object] | None = None,
        later: LaterRetry | None = None,
        hours: SendingHours | None = None,
        clock: Callable[[], datetime] | None = None,
        optouts: OptOuts | None = None,
        optout_transactional: bool = False,
    ) -> None:
        self._optouts = optouts
        """The suppression list, checked again just before the POST (see :meth:`_suppress`)."""
        self._optout_transactional = optout_transactional
        self._clock = clock or _utc_now
        """The wall clock the sending hours are read against (tests pass a fake one)."""
        self._hours = hours or SendingHours()
        """When marketing messages may leave; outside it they are held (see :meth:`_hold`)."""
        self._in_flight: set[str] = set()
        self._in_flight_lock = threading.Lock()
        self._on_credits = on_credits
        """Called with ``credits`` of every sendSms answer that carries it (the credits watch)."""
        self._ledger = ledger
        self._later = later or LaterRetry()
        self._limiter = limiter or RateLimiter(None, segments_per_s=0)
        self._client = client
        self._retrying = retrying
        self._switch = switch

    def _credits_seen(self, credits: int | None) -> None:
        """Feed the balance of an answer to the credits watch; a failure there (Redis) never
        touches the send's outcome."""
        if credits is None or self._on_credits is None:
            return
        try:
            self._on_credits(credits)
        except Exception as exc:  # noqa: BLE001 - the send's outcome matters more than the figure
            log.warning("sms.credits.unrecorded", error=type(exc).__name__)

    def stop_waiting(self) -> None:
        """Warm shutdown: sends waiting for a rate-limit turn give up and requeue their
        message (nothing was sent), instead of holding the worker for their wait budget."""
        self._limiter.stop()

    def send(self, message_id: str, *, job: tuple[str, str] | None = None) -> SendResult:
        """Claim, wait for a rate-limit turn, post and settle one message.

        Never raises for provider outcomes: every one ends in a terminal state in the store. A
        message that is not ``queued`` any more (sent, in flight elsewhere, expired) is left as
        it is and nothing is sent. ``job`` (its intermediate list and id), when given, is
        dropped by the script that records the outcome (``SendResult.job_done``).
        """
        with self._in_flight_lock:
            self._in_flight.add(message_id)
        try:
            send = self._claim(message_id, job)
            if isinstance(send, SendResult):
                return send
            if send.request.purpose is Purpose.MARKETING:
                held = self._hold(send)
                if held is not None:
                    return held
            cancelled = self._suppress(send)
            if cancelled is not None:
                return cancelled
            if send.request.test:
                return self._simulate(send)
            if send.held:
                given_back = self._wait_first_turn(send)
                if given_back is not None:
                    return given_back
            return self._post_and_settle(send)
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(message_id)

    def in_flight(self) -> frozenset[str]:
        """The messages this process's send slots are working on right now (added before the
        claim, removed once the outcome is written): a claim of this worker in Redis that is
        not among them was left behind (see :meth:`Reconciler.own_orphans`)."""
        with self._in_flight_lock:
            return frozenset(self._in_flight)

    def _claim(self, message_id: str, job: tuple[str, str] | None) -> _Send | SendResult:
        """Claim the message for this worker, or say why nothing will be sent."""
        hold = self._limiter.enabled or self._ledger.barrier.enabled
        try:
            claim = self._ledger.claim(message_id, hold=hold)
        except NotReplicatedError as exc:
            answer = exc.answer if isinstance(exc.answer, list) else []
            if answer and decoded(answer[0]) == "claimed":
                return self._give_back(message_id, exc)
            raise
        if claim.outcome != "claimed" or claim.request is None:
            return self._not_claimed(message_id, claim.outcome)
        crash_point("after_claim")
        request = SendRequest.from_stored(claim.request)
        ids = {"key": request.key, "lane": request.lane.value, "job_id": keys.job_id(message_id)}
        structlog.contextvars.bind_contextvars(key=request.key, lane=request.lane.value)
        log.info("sms.send.started", state="sending", recipients=len(request.recipients))
        limit_deadline = self._limiter.deadline()
        if claim.expires_at is not None:
            # No rate-limit turn is booked past the validity: the send expires instead.
            limit_deadline = min(limit_deadline, time.monotonic() + claim.expires_at - time.time())
        return _Send(
            message_id=message_id,
            job=job,
            request=request,
            ids=ids,
            started=time.monotonic(),
            cost=request.segments * len(request.recipients),
            priority=priority_of(request.lane),
            limit_deadline=limit_deadline,
            turn_taken=self._limiter.enabled,
            held=hold,
            expires_at=claim.expires_at,
        )

    def _hold(self, send: _Send) -> SendResult | None:
        """A marketing message outside its sending hours goes back to ``queued`` until the
        window opens for every recipient (nothing posted, no rate-limit turn taken, no retry
        round counted); one whose validity ends first expires now. None: it may leave."""
        now = self._clock()
        try:
            opening = self._hours.next_opening((r.phone for r in send.request.recipients), now)
        except NoCommonWindowError as exc:
            return self._finish(send, State.FAILED, reason=str(exc), error=str(exc))
        if opening is None:
            return None
        due = opening.timestamp()
        due_iso = opening.isoformat(timespec="seconds")
        if send.expires_at is not None and due >= send.expires_at:
            reason = (
                f"valid_for_s runs out before the marketing sending hours open ({due_iso}); "
                "nothing was sent"
            )
            return self._finish(send, State.EXPIRED, reason=reason, error=reason)
        held = self._ledger.park_for_later(
            send.message_id,
            due=due,
            since=now.timestamp(),
            reason=f"outside the marketing sending hours ({self._hours.describe()}, in the "
            f"recipients' time zones); held until {due_iso}, nothing was sent",
            actor=f"worker {self._ledger.worker_name}",
            attempts=0,
            error="",
            hold=HELD_FOR_HOURS,
        )
        if not held:
            return self._not_claimed(send.message_id, State.SENDING.value)
        self._ledger.count({"held_for_hours": 1})
        log.info("sms.send.held", state=State.QUEUED.value, until=due_iso, reason=HELD_FOR_HOURS)
        return SendResult(State.QUEUED.value)

    def _simulate(self, send: _Send) -> SendResult:
        """Test mode (a test account's message): recorded ``sent`` as AllMySMS would have
        accepted it, with test smsIds, and nothing posted: no request, no credit, no receipt."""
        sms_ids = {
            r.phone: f"test-{send.message_id}-{n}"
            for n, r in enumerate(send.request.recipients, start=1)
        }
        reason = "test mode: accepted as AllMySMS would, nothing was sent to AllMySMS"
        return self._finish(
            send,
            State.SENT,
            reason=reason,
            extra={"sms_ids": sms_ids, "nb_contacts": len(sms_ids), "credits_used": 0},
        )

    def _suppress(self, send: _Send) -> SendResult | None:
        """Drop the recipients who opted out while the message waited (marketing, or every
        message with ``SMSQ_OPTOUT_TRANSACTIONAL``); with none left it ends ``cancelled``,
        nothing posted. None: it goes on (perhaps to fewer recipients)."""
        applies = send.request.purpose is Purpose.MARKETING or self._optout_transactional
        if self._optouts is None or not applies:
            return None
        suppressed = self._optouts.suppressed(r.phone for r in send.request.recipients)
        if not suppressed:
            return None
        send.opted_out = tuple(r.phone for r in send.request.recipients if r.phone in suppressed)
        left = tuple(r for r in send.request.recipients if r.phone not in suppressed)
        log.info("sms.send.opted_out", recipients=len(send.opted_out), left=len(left))
        if not left:
            reason = (
                f"every recipient ({len(send.opted_out)}) opted out while it waited; nothing "
                "was sent"
            )
            return self._finish(send, State.CANCELLED, reason=reason, error=None)
        send.request = replace(send.request, recipients=left)
        send.cost = send.request.segments * len(left)
        return None

    def _give_back(self, message_id: str, exc: NotReplicatedError) -> SendResult:
        """The claim (or the end of its hold) is on the primary, but too few replicas confirmed
        it: a failover now could bring back a ``queued`` message after our POST, a duplicate SMS.
        So nothing is posted, and the message goes back to its lane unsent (if even that fails,
        the reconciler releases the held claim later)."""
        log.warning(
            "sms.send.not_durable",
            state="queued",
            confirmed=exc.confirmed,
            required=exc.required,
            reason="the claim is not confirmed by enough replicas; nothing was sent",
        )
        try:
            self._ledger.release(
                message_id,
                holder=self._ledger.worker_name,
                actor=f"worker {self._ledger.worker_name}",
                reason=f"claim not confirmed by {exc.required} replica(s) "
                "(SMSQ_REDIS_WAIT_REPLICAS); nothing was sent, requeued",
                unposted=True,
            )
        except REDIS_UNAVAILABLE_ERRORS as error:
            log.warning("sms.send.release_failed", error=type(error).__name__)
        return SendResult("released")

    def _not_claimed(self, message_id: str, outcome: str) -> SendResult:
        if outcome == "expired":
            log.warning("sms.send.expired", state="expired")
            return SendResult("expired")
        if outcome == "missing":
            # The record expired (SMSQ_OUTCOME_TTL_S) or was purged while the job waited: it
            # must not vanish without a trace.
            self._ledger.dead_letter_job(
                message_id, "message record expired or was purged before the send; nothing was sent"
            )
            log.error("sms.send.skipped", state="missing")
            return SendResult("missing")
        if outcome == State.CANCELLED.value:
            # Someone cancelled it while queued: this job copy is dropped, nothing to look at.
            log.info("sms.send.skipped", state=outcome)
            return SendResult(outcome)
        log.warning("sms.send.skipped", state=outcome)
        return SendResult(outcome)

    def _wait_first_turn(self, send: _Send) -> SendResult | None:
        """Wait for the first rate-limit turn while the claim is held: a worker killed now
        leaves a message the reconciler gives back to its lane, not an ``unknown``. Returns
        None once the message may be posted."""
        if send.turn_taken:
            try:
                self._limiter.wait(send.cost, deadline=send.limit_deadline, priority=send.priority)
            except RateLimitBacklogError as exc:
                if send.expired() or _past(send.expires_at, send.limit_deadline):
                    return self._expire(send, "while it waited for a rate-limit turn")
                return self._requeue_unsent(send, str(exc))
            if send.expired():
                return self._expire(send, "while it waited for a rate-limit turn")
        try:
            posting = self._ledger.start_posting(send.message_id)
        except NotReplicatedError as exc:
            return self._give_back(send.message_id, exc)
        if not posting:
            log.warning(
                "sms.send.released",
                state="queued",
                reason="given back while waiting for its rate-limit turn",
            )
            return SendResult("released")
        return None

    def _attempt(self, send: _Send) -> ProviderReply:
        """One POST to AllMySMS; tenacity calls it again for :class:`NotSentError` only."""
        # Every attempt pays the global rate limit (no Redis call when it is off); past the
        # send's wait budget it raises RateLimitBacklogError before anything is sent.
        if send.turn_taken:
            send.turn_taken = False
        else:
            self._limiter.wait(send.cost, deadline=send.limit_deadline, priority=send.priority)
        if send.expired():
            raise _ExpiredError
        send.attempts += 1
        flux = build_flux(send.request, now=datetime.now(UTC), client_id=send.message_id)
        sent_at = time.monotonic()
        try:
            reply = self._client.send(flux)
            self._credits_seen(reply.credits)
        except ProviderBusyError as exc:
            # HTTP 429 (or 503 + Retry-After): AllMySMS did not process it, so tenacity may
            # retry it without sending twice; the whole fleet slows down.
            self._limiter.push_back(retry_after_s=exc.retry_after_s)
            raise
        except OutcomeUnknownError as exc:
            send.latency_s = time.monotonic() - sent_at
            if exc.http_status in PUSH_BACK_STATUSES:  # a bare 503: unknown, but slow down
                self._limiter.push_back()
            else:
                self._limiter.answered(send.latency_s, success=False)
            raise
        send.latency_s = time.monotonic() - sent_at
        self._limiter.answered(send.latency_s, success=True)
        crash_point("after_send")
        return reply

    def _post_and_settle(self, send: _Send) -> SendResult:
        """Post with retries on transport failures only, then record exactly one outcome."""
        try:
            reply = self._retrying()(self._attempt, send)
        except _ExpiredError:
            return self._expire(send, "before an attempt could leave")
        except (ProviderBusyError, RateLimitBacklogError) as exc:
            if send.expired() or (
                isinstance(exc, RateLimitBacklogError)
                and _past(send.expires_at, send.limit_deadline)
            ):
                return self._expire(send, "before an attempt could leave")
            # Provably nothing was sent (busy until the retries ran out, or no turn within
            # the rate limit's wait budget): back to the front of the lane, never dropped.
            return self._requeue_unsent(send, str(exc))
        except MisdirectedError as exc:
            # Provably not sent, and nothing will be until the URL is fixed: like a bad account.
            reason = f"ALLMYSMS_BASE_URL: {exc.reason}"
            return self._pause_and_requeue(send, None, reason, action=MISDIRECTED_ACTION)
        except NotSentError as exc:
            return self._park_or_fail(send, exc)
        except OutcomeUnknownError as exc:
            return self._finish(
                send,
                State.UNKNOWN,
                reason=exc.reason,
                error=exc.reason,
                extra={"http_status": exc.http_status},
            )
        except JobTimeoutException:
            return self._finish(
                send,
                State.UNKNOWN,
                reason="job timeout during the send",
                error="JobTimeoutException",
            )
        except Exception as exc:  # noqa: BLE001 - a claimed message must never stay "sending"
            return self._finish(
                send,
                State.UNKNOWN,
                reason="unexpected error during the send",
                error=type(exc).__name__,
            )
        except BaseException as exc:
            # A second stop signal (cold shutdown) lands here mid-request: record, then stop.
            self._finish(
                send,
                State.UNKNOWN,
                reason="worker stopped during the send",
                error=type(exc).__name__,
            )
            raise
        return self._settle_reply(send, reply)

    def _park_or_fail(self, send: _Send, exc: NotSentError) -> SendResult:
        """Every attempt provably failed to reach AllMySMS: park the message for a later round
        while the later-retry window lasts (and its validity too), else fail it as before."""
        reason = f"AllMySMS unreachable after {send.attempts} attempts"
        rounds, since = self._ledger.later_rounds(send.message_id)
        now = time.time()
        due = self._later.due(rounds=rounds, since=since, now=now)
        if due is not None and (send.expires_at is None or due < send.expires_at):
            parked = self._ledger.park_for_later(
                send.message_id,
                due=due,
                since=now,
                reason=f"{reason}; later retry round {rounds + 1}, nothing was sent",
                actor=f"worker {self._ledger.worker_name}",
                attempts=send.attempts,
                error=str(exc),
            )
            if parked:
                self._ledger.count({**self._metrics(send, None), "later_parked": 1})
                log.warning(
                    "sms.send.later_scheduled",
                    state=State.QUEUED.value,
                    attempt=send.attempts,
                    round=rounds + 1,
                    wait_s=round(due - now, 3),
                    error=type(exc).__name__,
                )
                return SendResult(State.QUEUED.value, None, send.attempts)
        if rounds:
            reason += f" in each of {rounds + 1} rounds over {now - (since or now):.0f} s"
        return self._finish(send, State.FAILED, reason=reason, error=str(exc))

    def _settle_reply(self, send: _Send, reply: ProviderReply) -> SendResult:
        """The state AllMySMS's answer means, recorded (or the lanes paused for 102-104)."""
        info = classify(reply.status)
        if info is None:
            return self._finish(
                send,
                State.UNKNOWN,
                reason=f"unexpected provider status {reply.status}",
                error=f"unexpected provider status {reply.status}",
                reply=reply,
            )
        if reply.status in PAUSE_STATUSES:
            reason = f"AllMySMS {reply.status}: {info.meaning}"
            return self._pause_and_requeue(send, reply, reason, action=ACCOUNT_ACTION)
        state = info.state
        sent = set(reply.sms_ids)
        missing = [r.phone for r in send.request.recipients if r.phone not in sent]
        if state is State.SENT and (reply.invalid_numbers or (reply.sms_ids and missing)):
            state = State.PARTIAL
        reason = f"{reply.status} {info.meaning}"
        if info.category == "credit":
            reason += " (safe to requeue after a credit top-up)"
        result = self._finish(send, state, reason=reason, reply=reply, category=info.category)
        if reply.invalid_numbers and state in (State.SENT, State.PARTIAL, State.SCHEDULED):
            self._refused_numbers(send, reply.invalid_numbers)
        return result

    def _refused_numbers(self, send: _Send, numbers: list[str]) -> None:
        """Numbers AllMySMS listed in ``invalidNumbers`` of an answer that accepted the others
        go on the suppression list: smsq checked every number with libphonenumber before the
        POST, so a valid number refused there is taken to be on AllMySMS's blacklist (STOP).
        A failure here never touches the outcome, already recorded."""
        if self._optouts is None:
            return
        try:
            added = sum(
                self._optouts.add(
                    number,
                    source=Source.REFUSED,
                    by="allmysms",
                    comment=f"in invalidNumbers of an accepted send ({send.ids['key'][:80]})",
                )
                for number in numbers
            )
        except Exception as exc:  # noqa: BLE001 - the send's outcome matters more
            log.warning("sms.optout.unrecorded", error=type(exc).__name__, numbers=len(numbers))
            return
        if added:
            log.info("sms.optout.added", source=Source.REFUSED.value, numbers=added)

    def _finish(
        self,
        send: _Send,
        state: State,
        *,
        reason: str,
        error: str | None = None,
        reply: ProviderReply | None = None,
        category: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> SendResult:
        duration_ms = round((time.monotonic() - send.started) * 1000)
        fields: dict[str, Any] = {
            "attempts": send.attempts,
            "duration_ms": duration_ms,
            "error": error,
            "reason": reason,
            "category": category,
        }
        if reply is not None:
            fields.update(
                provider_status=reply.status,
                provider_text=reply.status_text,
                campaign_id=reply.campaign_id,
                sms_ids=reply.sms_ids,
                invalid_numbers=reply.invalid_numbers,
                credits_used=reply.credits_used,
                credits_left=reply.credits,
                nb_sms=reply.nb_sms,
                nb_contacts=reply.nb_contacts,
            )
        if send.opted_out:
            fields[OPTED_OUT] = list(send.opted_out)
        fields.update(extra or {})
        metrics = self._metrics(send, reply)
        recorded = self._write_outcome(
            send.message_id, state, fields, reason, send.ids, metrics, send.job
        )
        event = _EVENTS[state]
        level = log.info if state in (State.SENT, State.SCHEDULED) else log.warning
        level(
            event,
            state=state.value,
            attempt=send.attempts,
            provider_status=reply.status if reply else None,
            duration_ms=duration_ms,
            error=error,
            invalid_numbers=[mask_phone(n) for n in reply.invalid_numbers]
            if reply and reply.invalid_numbers
            else None,
            recorded=recorded,
        )
        return SendResult(
            state.value,
            reply.status if reply else None,
            send.attempts,
            job_done=send.job is not None,
        )

    def _expire(self, send: _Send, when: str) -> SendResult:
        """``valid_for_s`` ran out after the claim: nothing leaves, the message ends expired."""
        reason = f"valid_for_s ran out {when}; nothing was sent"
        return self._finish(send, State.EXPIRED, reason=reason, error=reason)

    def _requeue_unsent(self, send: _Send, reason: str) -> SendResult:
        actor = f"worker {self._ledger.worker_name}"
        self._ledger.requeue(
            send.message_id,
            allowed=frozenset({State.SENDING}),
            actor=actor,
            front=True,
            reason=f"{reason}; nothing was sent, requeued",
        )
        self._ledger.count(self._metrics(send, None))
        log.warning(
            "sms.send.requeued", state=State.QUEUED.value, attempt=send.attempts, reason=reason
        )
        return SendResult(State.QUEUED.value, None, send.attempts)

    def _pause_and_requeue(
        self, send: _Send, reply: ProviderReply | None, reason: str, *, action: str
    ) -> SendResult:
        """The account or the URL cannot send (bad credentials, no credit, no sendSms at
        ``ALLMYSMS_BASE_URL``): stop every worker instead of turning the whole queue into dead
        letters, and put this message back at the front."""
        actor = f"worker {self._ledger.worker_name}"
        self._switch.pause(None, reason=reason, by=actor)
        self._ledger.requeue(
            send.message_id,
            allowed=frozenset({State.SENDING}),
            actor=actor,
            front=True,
            reason=f"{reason}; lanes paused, nothing was sent",
        )
        self._ledger.count(self._metrics(send, reply))
        status = reply.status if reply is not None else None
        log.error("sms.lanes.paused", provider_status=status, reason=reason, action=action)
        return SendResult(State.QUEUED.value, status, send.attempts)

    def _metrics(self, send: _Send, reply: ProviderReply | None) -> dict[str, int]:
        metrics: dict[str, int] = {}
        if reply is not None:
            metrics[f"provider_status:{reply.status}:{send.lane}"] = 1
        if send.attempts > 1:
            metrics["retries"] = send.attempts - 1
        if send.latency_s is not None:
            metrics[f"latency_bucket:{latency_bucket(send.latency_s)}"] = 1
            metrics["latency_sum_us"] = round(send.latency_s * 1_000_000)
            metrics["latency_count"] = 1
        return metrics

    def _write_outcome(
        self,
        message_id: str,
        state: State,
        fields: dict[str, Any],
        reason: str,
        ids: dict[str, str],
        metrics: dict[str, int],
        job: tuple[str, str] | None,
    ) -> bool:
        """Record the outcome, waiting out a Redis outage: the answer is known only here.

        Raises:
            redis.exceptions.ConnectionError: Redis stayed down (or full, or read-only) for
                ``OUTCOME_WRITE_RETRY_S``; the message stays ``sending`` and the reconciler
                makes it ``unknown``.
        """
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(REDIS_UNAVAILABLE_ERRORS),
            stop=tenacity.stop_after_delay(OUTCOME_WRITE_RETRY_S),
            wait=Backoff(initial_s=OUTCOME_WRITE_WAIT_S, max_s=OUTCOME_WRITE_WAIT_MAX_S),
            reraise=True,
            before_sleep=lambda s: log.warning(
                "sms.store.retry_scheduled",
                attempt=s.attempt_number,
                state=state.value,
                error=type(s.outcome.exception()).__name__ if s.outcome else None,
            ),
        )
        try:
            return bool(
                retrying(
                    self._ledger.finish,
                    message_id,
                    state,
                    fields,
                    reason=reason,
                    record=ids,
                    metrics=metrics,
                    job=job,
                )
            )
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.error(
                "sms.send.outcome_unrecorded",
                error=type(exc).__name__,
                state=state.value,
                provider_status=fields.get("provider_status"),
                campaign_id=fields.get("campaign_id"),
            )
            raise


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _ExpiredError(Exception):
    """Raised inside an attempt when ``valid_for_s`` has run out: tenacity does not retry it."""


def _past(expires_at: float | None, limit_deadline: float) -> bool:
    """Whether the rate-limit deadline was the validity's (no turn before it expires)."""
    if expires_at is None:
        return False
    return time.monotonic() + expires_at - time.time() <= limit_deadline + 1e-3


ACCOUNT_ACTION = "fix the account, then run: smsq resume all"
MISDIRECTED_ACTION = (
    "fix ALLMYSMS_BASE_URL (AllMySMS's is https://api.allmysms.com/http/9.0), then run: "
    "smsq resume all"
)
PAUSE_STATUSES = frozenset({102, 103, 104})
"""AllMySMS statuses that mean the account cannot send at all: pause, do not dead-letter."""
OUTCOME_WRITE_RETRY_S = 120.0
"""How long a worker holding AllMySMS's answer keeps trying to record it while Redis is down."""
OUTCOME_WRITE_WAIT_S = 0.2
OUTCOME_WRITE_WAIT_MAX_S = 5.0
"""First and longest wait between two attempts to record an outcome while Redis is down."""

_EVENTS = {
    State.SENT: "sms.send.accepted",
    State.SCHEDULED: "sms.send.scheduled",
    State.PARTIAL: "sms.send.partial",
    State.REJECTED: "sms.send.rejected",
    State.UNKNOWN: "sms.send.outcome_unknown",
    State.FAILED: "sms.send.failed",
    State.EXPIRED: "sms.send.expired",
    State.CANCELLED: "sms.send.cancelled",
}
