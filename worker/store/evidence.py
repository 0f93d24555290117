"""Settling ``unknown`` messages from evidence that AllMySMS got them: the store side.

An ``unknown`` message (the POST may have reached AllMySMS, its answer was lost) becomes
``sent`` only on positive evidence, by compare-and-set (``unknown`` → ``sent``, the ledger's
own transition script, so a message settled twice, or requeued by an operator meanwhile, is
settled at most once):

* a delivery receipt or a reply that names it by ``cliMsgId`` (smsq sends its message id as
  ``CLIMSGID``; whether AllMySMS's webhooks echo it is unknown, its getAcks and getPull
  answers do), and whose recipient, when given, is one of the message's;
* else, when its campaignId is one smsq knows (``smsq:campaign:<id>``), that campaign's message;
* else one whose recipient and time match exactly one ``unknown`` message: sent to that
  number, its send started at most :data:`SETTLE_WINDOW_S` before the receipt (and not more
  than :data:`CLOCK_SLACK_S` after it). Two or more candidates are ambiguous: nothing changes,
  and the reason is logged; a person decides;
* or a lookup (getAcks for the message's campaignId, or for a receipt's campaign whose answer
  names the message by ``cliMsgId``), made by :mod:`worker.send.settle`.

Evidence that AllMySMS did *not* get it is never acted upon: no answer, or an empty getAcks,
is not proof (AllMySMS gives no positive "not sent"), so such a message stays ``unknown``. The
settled record's history says what proved it (``settled by receipt smsId=..., cliMsgId=...``),
its ``settled_by`` field how (``receipt``, ``reply`` or ``lookup``), and the counter
``unknown_settled:<how>`` counts it. Candidates are the ``unknown`` dead letters of the window
(newest first, at most :data:`CANDIDATES_MAX`): one an operator has already dismissed is not
looked at.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog

from producers import keys
from producers.phones import mask_phone
from producers.states import State
from producers.store import decoded
from worker.store import lua


if TYPE_CHECKING:
    from redis import Redis

    from worker.store.ledger import Ledger
    from worker.store.receipts import Applied, Receipt, ReceiptBook, Reply

log = structlog.get_logger()

SETTLE_WINDOW_S = 72 * 3600.0
"""Longest time from a send to a receipt or reply that may settle it by recipient alone."""
CLOCK_SLACK_S = 300.0
"""How far a receipt's ``receptionDate`` (AllMySMS's clock, Paris time, to the second) may be
before smsq's record of the send's start."""
CANDIDATES_MAX = 2000
"""Most ``unknown`` dead letters looked at for one recipient match (newest first)."""
RECEPTION_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
PARIS = ZoneInfo("Europe/Paris")
"""AllMySMS's clock: ``receptionDate`` carries no zone."""
LEADS_MAX = 10_000
"""Most campaigns of unmatched receipts kept for a getAcks lookup (the oldest go first)."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """Something AllMySMS said about a recipient of one of its campaigns."""

    how: str
    """``receipt``, ``reply`` or ``lookup``."""
    phone: str = ""
    sms_id: str = ""
    campaign_id: str = ""
    cli_msg_id: str = ""
    reception_date: str = ""
    """AllMySMS's time of it (Paris, ``YYYY-MM-DD HH:MM:SS``); empty: now."""
    source: str = ""
    """What said it: ``webhook``, ``getAcks``, ``getPulls``..."""

    def at(self) -> float:
        """When it happened (epoch seconds); now when unknown or unreadable."""
        if self.reception_date:
            try:
                naive = datetime.strptime(self.reception_date, RECEPTION_DATE_FORMAT)  # noqa: DTZ007
            except ValueError:
                return time.time()
            return naive.replace(tzinfo=PARIS).timestamp()
        return time.time()

    def describe(self) -> str:
        """The history's wording: ``receipt smsId=..., cliMsgId=..., campaignId=...``."""
        parts = [
            f"{name}={value}"
            for name, value in (
                ("smsId", self.sms_id),
                ("cliMsgId", self.cli_msg_id),
                ("campaignId", self.campaign_id),
            )
            if value
        ]
        what = self.how if not self.source or self.how != "lookup" else f"lookup {self.source}"
        return f"{what} {', '.join(parts)}".strip()


@dataclass(frozen=True, slots=True)
class Settled:
    """What the evidence did."""

    outcome: str
    """``settled``; ``linked`` (the message was already settled from evidence: this recipient's
    smsId is added to it); ``ambiguous`` (several candidates); ``no_match``; ``not_unknown``
    (the message it names is not unknown, or not sent to that recipient)."""
    message_id: str | None = None
    candidates: int = 0


class EvidenceBook:
    """Matches evidence to ``unknown`` messages and settles them (one at a time, by CAS)."""

    def __init__(
        self, connection: Redis, ledger: Ledger, *, actor: str, ttl_s: int = 30 * 24 * 3600
    ) -> None:
        self._redis = connection
        self._ledger = ledger
        self._actor = actor
        self._ttl_s = ttl_s
        """How long a linked smsId's index is kept (the outcome TTL)."""
        self._link = connection.register_script(lua.load("evidence_link"))

    def settle(self, evidence: Evidence) -> Settled:
        """Settle the ``unknown`` message this evidence proves sent, if exactly one."""
        if evidence.cli_msg_id and keys.MESSAGE_ID_PATTERN.fullmatch(evidence.cli_msg_id):
            return self.settle_message(evidence.cli_msg_id, evidence)
        owner = (
            self._redis.get(keys.campaign(evidence.campaign_id)) if evidence.campaign_id else None
        )
        if owner:
            # The campaign is a known message's: the evidence is about that one, no other.
            return self.settle_message(_str(owner), evidence)
        if not evidence.phone:
            return Settled("no_match")
        candidates = self.candidates(evidence.phone, evidence.at())
        if len(candidates) == 1:
            return self.settle_message(candidates[0], evidence)
        if len(candidates) > 1:
            log.warning(
                "sms.unknown.ambiguous",
                phone=mask_phone(evidence.phone),
                candidates=len(candidates),
                how=evidence.how,
                sms_id=evidence.sms_id or None,
                reason="several unknown messages to this number in the send window; "
                "left for a person",
            )
            self._redis.hincrby(keys.METRICS, "unknown_ambiguous", 1)
            return Settled("ambiguous", candidates=len(candidates))
        return Settled("no_match")

    def on_receipt(self, receipt: Receipt, book: ReceiptBook, *, event_id: str) -> Applied | None:
        """A webhook receipt whose smsId matched no message: settle the ``unknown`` it proves
        sent, then apply it there. Unsettled, its campaign is kept as a lead for a getAcks
        lookup (:meth:`leads`). Returns what applying it did, None when nothing was settled."""
        evidence = Evidence(
            how="receipt",
            phone=receipt.phone,
            sms_id=receipt.sms_id,
            campaign_id=receipt.campaign_id,
            cli_msg_id=receipt.cli_msg_id,
            reception_date=receipt.reception_date,
            source="webhook",
        )
        if self.settle(evidence).outcome in ("settled", "linked"):
            return book.apply_receipt(receipt, event_id=event_id)
        self.keep_lead(evidence)
        return None

    def on_reply(self, reply: Reply, book: ReceiptBook, *, event_id: str) -> Applied | None:
        """As :meth:`on_receipt`, for a reply (MO SMS) to an smsId smsq did not know."""
        evidence = Evidence(
            how="reply",
            phone=reply.phone,
            sms_id=reply.sms_id,
            campaign_id=reply.campaign_id,
            cli_msg_id=reply.cli_msg_id,
            reception_date=reply.reception_date,
            source="webhook",
        )
        if reply.sms_id and self.settle(evidence).outcome in ("settled", "linked"):
            return book.store_reply(reply, event_id=event_id)
        self.keep_lead(evidence)
        return None

    def keep_lead(self, evidence: Evidence) -> None:
        """Keep an unmatched receipt's campaign (with its smsId and recipient) for a lookup,
        while any message is ``unknown`` (another system's receipts are not kept)."""
        if not evidence.campaign_id or not evidence.phone:
            return
        # A message still "sending" may become unknown once its worker gives up on the answer.
        if not self._redis.zcard(keys.SENDING) and not self.unknown_ids(
            since=time.time() - SETTLE_WINDOW_S
        ):
            return
        lead = {"sms_id": evidence.sms_id, "phone": evidence.phone, "how": evidence.how}
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(keys.EVIDENCE_CAMPAIGNS, evidence.campaign_id, json.dumps(lead))
        pipe.zadd(keys.EVIDENCE_CAMPAIGNS_SEEN, {evidence.campaign_id: time.time()})
        pipe.execute()
        extra = self._redis.zcard(keys.EVIDENCE_CAMPAIGNS_SEEN) - LEADS_MAX
        if extra > 0:
            self.drop_leads(
                [_str(c) for c in self._redis.zrange(keys.EVIDENCE_CAMPAIGNS_SEEN, 0, extra - 1)]
            )

    def leads(self, *, limit: int) -> list[tuple[str, dict[str, str]]]:
        """The newest kept campaigns and their lead (dropping those past the window)."""
        self.drop_leads(
            [
                _str(c)
                for c in self._redis.zrangebyscore(
                    keys.EVIDENCE_CAMPAIGNS_SEEN, "-inf", time.time() - SETTLE_WINDOW_S
                )
            ]
        )
        campaigns = [
            _str(c) for c in self._redis.zrevrange(keys.EVIDENCE_CAMPAIGNS_SEEN, 0, limit - 1)
        ]
        if not campaigns:
            return []
        raw = self._redis.hmget(keys.EVIDENCE_CAMPAIGNS, campaigns)
        return [(c, json.loads(_str(r))) for c, r in zip(campaigns, raw, strict=True) if r]

    def drop_leads(self, campaigns: list[str]) -> None:
        if campaigns:
            pipe = self._redis.pipeline(transaction=True)
            pipe.hdel(keys.EVIDENCE_CAMPAIGNS, *campaigns)
            pipe.zrem(keys.EVIDENCE_CAMPAIGNS_SEEN, *campaigns)
            pipe.execute()

    def unknown_ids(self, *, since: float, limit: int = CANDIDATES_MAX) -> list[str]:
        """Message ids of the ``unknown`` dead letters recorded since ``since`` (epoch s),
        newest first."""
        raw = self._redis.zrevrangebyscore(keys.DEAD_LETTERS, "+inf", since, start=0, num=limit)
        ids = [_str(r) for r in raw]
        pipe = self._redis.pipeline(transaction=False)
        for dead_id in ids:
            pipe.hmget(keys.dead_letter(dead_id), ["kind", "state", "message_id"])
        found = []
        for dead_id, (kind, state, mid) in zip(ids, pipe.execute(), strict=True):
            if _str(kind) == "message" and _str(state) == "unknown":
                found.append(_str(mid) or dead_id)
        return found

    def candidates(self, phone: str, at: float) -> list[str]:
        """``unknown`` messages to ``phone`` whose send started in the window before ``at``."""
        found = []
        for mid in self.unknown_ids(since=at - SETTLE_WINDOW_S - CLOCK_SLACK_S):
            state, request = self._redis.hmget(keys.message(mid), ["state", "request"])
            if _str(state) != State.UNKNOWN.value or not request:
                continue
            if phone not in _phones(_str(request)):
                continue
            started = self._send_started(mid)
            if started is None or not started - CLOCK_SLACK_S <= at <= started + SETTLE_WINDOW_S:
                continue
            found.append(mid)
        return found

    def settle_message(self, mid: str, evidence: Evidence) -> Settled:
        """Settle ``mid`` if it is ``unknown`` (and was sent to the evidence's recipient)."""
        raw = self._redis.hmget(
            keys.message(mid), ["state", "request", "key", "lane", "job_id", "sms_ids"]
        )
        state, request, key, lane, job_id, sms_ids = (_str(v) for v in raw)
        if evidence.phone and evidence.phone not in _phones(request):
            return Settled("not_unknown", mid)
        if state != State.UNKNOWN.value:
            if (
                evidence.phone
                and evidence.sms_id
                and self._link(
                    keys=[keys.message(mid), keys.sms_id(evidence.sms_id)],
                    args=[evidence.phone, evidence.sms_id, self._ttl_s],
                )
            ):
                return Settled("linked", mid)
            return Settled("not_unknown", mid)
        known: dict[str, str] = json.loads(sms_ids) if sms_ids else {}
        if evidence.phone and evidence.sms_id:
            known[evidence.phone] = evidence.sms_id
        fields: dict[str, Any] = {
            "settled_by": evidence.how,
            "settled_evidence": evidence.describe(),
            "sms_ids": known or None,
            "campaign_id": evidence.campaign_id or None,
        }
        reason = f"settled by {evidence.describe()}: AllMySMS got it"
        done = self._ledger.finish(
            mid,
            State.SENT,
            fields,
            reason=reason,
            record={"key": key, "lane": lane, "job_id": job_id},
            expected=State.UNKNOWN,
            metrics={f"unknown_settled:{evidence.how}": 1},
            actor=self._actor,
        )
        if not done:
            return Settled("not_unknown", mid)
        log.warning(
            "sms.unknown.settled",
            message_id=mid,
            state=State.SENT.value,
            how=evidence.how,
            source=evidence.source or None,
            sms_id=evidence.sms_id or None,
            campaign_id=evidence.campaign_id or None,
            phone=mask_phone(evidence.phone) if evidence.phone else None,
        )
        return Settled("settled", mid, 1)

    def _send_started(self, mid: str) -> float | None:
        """When the last send of the message started (its last ``sending`` history entry)."""
        for raw in reversed(self._redis.lrange(keys.history(mid), 0, -1)):
            entry = json.loads(_str(raw))
            if entry.get("state") == State.SENDING.value and entry.get("at"):
                return datetime.fromisoformat(str(entry["at"])).timestamp()
        return None


def _str(value: Any) -> str:
    return decoded(value) if value else ""


def _phones(request: str) -> set[str]:
    try:
        data = json.loads(request)
    except ValueError:
        return set()
    return {str(r.get("phone", "")) for r in data.get("to", []) if isinstance(r, dict)}
