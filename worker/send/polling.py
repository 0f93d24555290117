"""Polling fallback for missed webhooks, and settling ``unknown`` messages by lookup.

Every ``poll_interval_s`` one live worker (under a Redis lock, like the credits watch) runs:

1. **replies**: ``getPulls`` (AllMySMS answers each reply once, "since the last call"); each
   reply finds its message by campaignId (``smsq:campaign:<id>``) and its recipient's smsId
   (one that matches nothing yet is held in ``smsq:poll:replies`` and tried again on the next
   runs while some message is still ``sending``, for at most :data:`REPLY_HOLD_S`),
   and goes through :meth:`ReceiptBook.store_reply`, the webhook's own script, which stores a
   smsMoId once: a reply seen by webhook and by polling is one reply (the sandbox gives both the
   same id; that AllMySMS does is assumed, not documented). A reply to no known message is
   evidence for an ``unknown`` one (cliMsgId, else recipient and window);
2. **receipts**: ``getAcks`` for the sent messages whose turn has come
   (``smsq:awaiting``: first ``poll_acks_after_s`` after the send, then at doubling gaps, at most
   :data:`ACK_POLLS_MAX` times, at most :data:`ACK_CAMPAIGNS_PER_RUN` per run) and that still
   miss a final receipt; each ack goes through :meth:`ReceiptBook.apply_receipt`, which keeps
   the first final status and counts a repeat as a duplicate, so the webhook and polling
   apply a receipt once;
3. **unknown**: the campaigns of unmatched webhook receipts (leads, once each) and the
   ``unknown`` messages that know their campaignId (at most once per
   :data:`UNKNOWN_LOOKUP_EVERY_S`) are looked up with ``getAcks`` (then ``getPull``: a
   reply proves the send too): an answer whose
   ``cliMsgId`` names an ``unknown`` message, or that lists an ``unknown`` message's recipient
   for its own campaign, settles it (:class:`EvidenceBook`). An empty answer proves nothing.

A provider error (not reached, an unreadable answer) is logged and ends that step of the run;
the next run tries again. Nothing here ever sends an SMS.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from producers import keys
from producers.errors import SmsqError, WebhookParamError
from producers.phones import mask_phone
from producers.store import decoded
from worker.allmysms.polling import Mo
from worker.send.turns import Turn
from worker.store.evidence import SETTLE_WINDOW_S, Evidence, EvidenceBook
from worker.store.receipts import Applied, ReceiptBook, Reply, parse_receipt, parse_reply


if TYPE_CHECKING:
    from collections.abc import Callable

    from redis import Redis

    from worker.allmysms.client import AllMySmsClient
    from worker.allmysms.polling import Acks
    from worker.store.ledger import Ledger

log = structlog.get_logger()

PULLS_LIMIT = 1000
"""Replies asked per getPulls (davaxi's default)."""
ACK_CAMPAIGNS_PER_RUN = 50
"""Most getAcks calls for sent messages in one run."""
ACK_POLLS_MAX = 6
"""getAcks polls of one sent message before the fallback gives up on its missing receipts."""
REPLY_HOLD_S = 3600.0
"""How long a polled reply that matches no message yet is held and tried again."""
UNKNOWN_LOOKUPS_PER_RUN = 50
"""Most getAcks calls for ``unknown`` messages and leads in one run."""
UNKNOWN_LOOKUP_EVERY_S = 3600
"""An ``unknown`` message's own campaign is asked getAcks at most this often."""


@dataclass(slots=True)
class PollRun:
    """What one run did, for its log line and tests."""

    replies: int = 0
    """Replies stored (new ones; a repeat is not counted)."""
    receipts: int = 0
    """Receipts applied (new statuses)."""
    duplicates: int = 0
    settled: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Poller:
    """The polling fallback of one worker process; :meth:`maybe_run` from the worker loop."""

    def __init__(
        self,
        connection: Redis,
        client: AllMySmsClient,
        ledger: Ledger,
        *,
        interval_s: float,
        acks_after_s: float,
        by: str,
        ttl_s: int = 30 * 24 * 3600,
        stop: Callable[[Reply, Applied], object] | None = None,
        keep_s: int = 0,
    ) -> None:
        self._stop = stop
        """Puts the number of a STOP reply on the suppression list (as the webhook does)."""
        self._redis = connection
        self._client = client
        self._book = ReceiptBook(connection, keep_s=keep_s)
        self._evidence = EvidenceBook(
            connection, ledger, actor=f"worker {by} (polling)", ttl_s=ttl_s
        )
        self._interval_s = interval_s
        self._acks_after_s = acks_after_s
        self._by = by
        self._turn = Turn(connection, keys.POLL_LOCK, interval_s=interval_s, by=by)

    def maybe_run(self) -> PollRun | None:
        """Run if this worker's interval has passed and no other worker holds the turn."""
        return self.run() if self._turn.due() else None

    def run(self) -> PollRun:
        """One pass: replies, then receipts, then ``unknown`` lookups."""
        result = PollRun()
        for step in (self._replies, self._receipts, self._unknown):
            try:
                step(result)
            except SmsqError as exc:
                result.errors.append(type(exc).__name__)
                log.warning("sms.poll.unavailable", step=step.__name__.strip("_"), error=str(exc))
        log.info(
            "sms.poll.done",
            replies=result.replies,
            receipts=result.receipts,
            duplicates=result.duplicates,
            settled=len(result.settled),
            errors=result.errors or None,
        )
        return result

    def _replies(self, result: PollRun) -> None:
        """Store new replies; hold those that match no message yet (getPulls answers each
        reply only once) and try them again on the next runs, for ``REPLY_HOLD_S``."""
        now = time.time()
        held = {
            _text(k): json.loads(_text(v))
            for k, v in self._redis.hgetall(keys.POLLED_REPLIES).items()
        }
        try:
            fresh = self._client.get_pulls(PULLS_LIMIT).mos
        finally:
            for mo_id, entry in held.items():
                if now - float(entry.get("held_at", 0)) > REPLY_HOLD_S:
                    self._redis.hdel(keys.POLLED_REPLIES, mo_id)
                else:
                    self._reply(Mo(**entry["mo"]), result)
        if fresh:
            self._redis.hset(
                keys.POLLED_REPLIES,
                mapping={m.mo_id: json.dumps({"mo": asdict(m), "held_at": now}) for m in fresh},
            )
        for mo in fresh:
            self._reply(mo, result)

    def _reply(self, mo: Mo, result: PollRun) -> None:
        """Store one polled reply (then stop holding it), or use it as evidence: held while
        some message is still ``sending`` (it may be this reply's), dropped otherwise."""
        mid = _text(self._redis.get(keys.campaign(mo.campaign_id))) if mo.campaign_id else ""
        sms_id = self._sms_ids(mid).get(mo.phone, "") if mid else ""
        evidence = Evidence(
            how="reply",
            phone=mo.phone,
            campaign_id=mo.campaign_id,
            cli_msg_id=mo.cli_msg_id or mid,
            reception_date=mo.reception_date,
            source="getPulls",
        )
        if self._stop is not None:
            self._stop(Reply(sms_mo_id=mo.mo_id, text=mo.text, phone=mo.phone), Applied("unknown"))
        if not sms_id:
            # Read before settling: a message that leaves "sending" meanwhile is tried next run.
            sending = self._redis.zcard(keys.SENDING)
            settled = self._evidence.settle(evidence)
            if settled.outcome == "settled" and settled.message_id:
                result.settled.append(settled.message_id)
            if settled.outcome == "settled" or not sending:
                self._redis.hdel(keys.POLLED_REPLIES, mo.mo_id)
            log.info(
                "sms.poll.reply_unmatched",
                phone=mask_phone(mo.phone),
                campaign_id=mo.campaign_id or None,
                settled=settled.outcome,
            )
            return
        try:
            reply = parse_reply(
                {
                    "smsMoId": mo.mo_id,
                    "message": mo.text,
                    "smsId": sms_id,
                    "phoneNumber": mo.phone,
                    "receptionDate": mo.reception_date,
                    "campaignId": mo.campaign_id,
                }
            )
        except WebhookParamError as exc:
            self._redis.hdel(keys.POLLED_REPLIES, mo.mo_id)
            log.warning("sms.poll.reply_refused", field=exc.field, reason=exc.reason)
            return
        applied = self._book.store_reply(reply, event_id=uuid.uuid4().hex)
        if applied.outcome != "unknown":
            self._redis.hdel(keys.POLLED_REPLIES, mo.mo_id)
        if applied.outcome == "stored":
            result.replies += 1
            self._redis.hincrby(keys.METRICS, "poll_replies_stored", 1)
        else:
            result.duplicates += 1

    def _receipts(self, result: PollRun) -> None:
        now = time.time()
        due = self._redis.zrangebyscore(
            keys.AWAITING_RECEIPTS,
            "-inf",
            now - self._acks_after_s,
            start=0,
            num=ACK_CAMPAIGNS_PER_RUN,
        )
        for raw in due:
            mid = _text(raw)
            campaign, sms_ids = self._campaign_and_ids(mid)
            if not campaign or not sms_ids or self._all_final(mid, sms_ids):
                self._done_awaiting(mid)
                continue
            acks = self._client.get_acks(campaign)
            self._apply_acks(acks, campaign, sms_ids, result)
            polls = int(self._redis.hincrby(keys.AWAITING_POLLS, mid, 1))
            if polls >= ACK_POLLS_MAX or self._all_final(mid, sms_ids):
                self._done_awaiting(mid)
            else:
                gap_s = max(self._acks_after_s, self._interval_s) * 2**polls
                self._redis.zadd(keys.AWAITING_RECEIPTS, {mid: now + gap_s}, xx=True)

    def _unknown(self, result: PollRun) -> None:
        budget = UNKNOWN_LOOKUPS_PER_RUN
        for campaign, lead in self._evidence.leads(limit=budget):
            budget -= 1
            acks = self._client.get_acks(campaign)
            named = acks.cli_msg_id or next((a.cli_msg_id for a in acks.acks if a.cli_msg_id), "")
            if not named or not any(a.phone == lead.get("phone") for a in acks.acks):
                self._evidence.drop_leads([campaign])
                continue
            if self._redis.zscore(keys.SENDING, named) is not None:
                continue  # its worker may still record the outcome (or die): ask again later
            self._evidence.drop_leads([campaign])
            settled = self._evidence.settle_message(
                named,
                Evidence(
                    how="lookup",
                    phone=lead.get("phone", ""),
                    sms_id=lead.get("sms_id", ""),
                    campaign_id=campaign,
                    cli_msg_id=named,
                    source="getAcks",
                ),
            )
            if settled.outcome in ("settled", "linked"):
                if settled.outcome == "settled":
                    result.settled.append(named)
                self._apply_acks(acks, campaign, self._sms_ids(named), result)
        if budget <= 0:
            return
        for mid in self._evidence.unknown_ids(since=time.time() - SETTLE_WINDOW_S):
            campaign = _text(self._redis.hget(keys.message(mid), "campaign_id"))
            if not campaign or not self._redis.set(
                keys.evidence_looked_up(mid), "1", nx=True, ex=UNKNOWN_LOOKUP_EVERY_S
            ):
                continue
            budget -= 1
            source, phone, named = self._campaign_proof(campaign, mid)
            if phone:
                settled = self._evidence.settle_message(
                    mid,
                    Evidence(
                        how="lookup",
                        phone=phone,
                        campaign_id=campaign,
                        cli_msg_id=named,
                        source=source,
                    ),
                )
                if settled.outcome == "settled":
                    result.settled.append(mid)
            if budget <= 0:
                return

    def _campaign_proof(self, campaign: str, mid: str) -> tuple[str, str, str]:
        """What AllMySMS shows of an ``unknown`` message's own campaign: (endpoint, a
        recipient it lists, the cliMsgId it names), from getAcks, else getPull (a reply proves
        the send too); no recipient when neither lists one (an answer naming another message
        by cliMsgId does not count)."""
        acks = self._client.get_acks(campaign)
        for ack in acks.acks:
            if ack.phone and (ack.cli_msg_id or acks.cli_msg_id) in ("", mid):
                return "getAcks", ack.phone, ack.cli_msg_id or acks.cli_msg_id
        mos = self._client.get_pull(campaign)
        for mo in mos.mos:
            if mo.phone and (mo.cli_msg_id or mos.cli_msg_id) in ("", mid):
                return "getPull", mo.phone, mo.cli_msg_id or mos.cli_msg_id
        return "", "", ""

    def _apply_acks(
        self, acks: Acks, campaign: str, sms_ids: dict[str, str], result: PollRun
    ) -> None:
        for ack in acks.acks:
            sms_id = sms_ids.get(ack.phone)
            if not sms_id or ack.status is None:
                continue
            try:
                receipt = parse_receipt(
                    {
                        "smsId": sms_id,
                        "status": str(ack.status),
                        "statusText": ack.comment[:255],
                        "phoneNumber": ack.phone,
                        "receptionDate": ack.reception_date,
                        "campaignId": campaign,
                    }
                )
            except WebhookParamError as exc:
                log.warning("sms.poll.ack_refused", field=exc.field, reason=exc.reason)
                continue
            applied = self._book.apply_receipt(receipt, event_id=uuid.uuid4().hex)
            if applied.outcome == "applied":
                result.receipts += 1
                self._redis.hincrby(keys.METRICS, "poll_receipts_applied", 1)
            else:
                result.duplicates += 1

    def _campaign_and_ids(self, mid: str) -> tuple[str, dict[str, str]]:
        campaign, raw = self._redis.hmget(keys.message(mid), ["campaign_id", "sms_ids"])
        return _text(campaign), _ids(raw)

    def _sms_ids(self, mid: str) -> dict[str, str]:
        return _ids(self._redis.hget(keys.message(mid), "sms_ids"))

    def _all_final(self, mid: str, sms_ids: dict[str, str]) -> bool:
        stored = self._redis.hmget(keys.receipts(mid), list(sms_ids.values()))
        return all(raw and json.loads(_text(raw)).get("final") for raw in stored)

    def _done_awaiting(self, mid: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(keys.AWAITING_RECEIPTS, mid)
        pipe.hdel(keys.AWAITING_POLLS, mid)
        pipe.execute()


def _text(value: Any) -> str:
    return decoded(value) if value else ""


def _ids(raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    try:
        data = json.loads(_text(raw))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
