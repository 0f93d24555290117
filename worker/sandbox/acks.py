"""The sandbox's memory of what it sent, for AllMySMS's polling endpoints: getAcks,
getAckBySmsId, getPulls, getPull and getPullBySmsId (``allmysms-api.md`` s. 4).

Every accepted recipient gets its final acknowledgement at once (``statut`` 1 delivered, or 5
SMS rejected for a number ending in ``777777``, as the webhook side plays them), and a number
ending in ``555555`` has replied ``OUI``: the same smsMoId the replies webhook carries, so a
reply fetched by polling and pushed by webhook is one reply. Answers carry ``cliMsgId``, the
``CLIMSGID`` of the flux (the real API echoes it in getAcks and getPull; in getAckBySmsId and
getPullBySmsId it is the sandbox's extension). Nothing known answers a top-level
``"status": "0"``, as MedShake guards against. The caller holds the provider's lock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.sandbox.receipt_pusher import PARIS, REJECTED_SUFFIX, REPLY_TEXT, REPLYING_SUFFIX


ACK_COMMENTS = {1: "Delivered", 5: "SMS rejected"}
NOTHING_TEXT = "Aucun resultat"
"""statusText of a ``"status": "0"`` answer (the real text is unknown)."""
LOOKUP_ENDPOINTS = ("getAcks", "getAckBySmsId", "getPulls", "getPull", "getPullBySmsId")
PULLS_LIMIT_MAX = 1000
"""Largest ``limit`` getPulls honours (davaxi passes 1000 by default)."""
REMEMBERED_MAX = 200_000
"""Campaigns (and replies) remembered at most: the oldest are forgotten first, so a long soak
does not grow the sandbox without bound."""


@dataclass(slots=True)
class _Campaign:
    cli_msg_id: str
    acks: list[dict[str, str]] = field(default_factory=list)
    mos: list[dict[str, str]] = field(default_factory=list)


class AckBook:
    """Acks and replies of every send the sandbox accepted, by campaign and by smsId."""

    def __init__(self, *, remembered_max: int = REMEMBERED_MAX) -> None:
        self._max = remembered_max
        self._campaigns: dict[str, _Campaign] = {}
        self._by_sms_id: dict[str, tuple[str, int]] = {}
        self._mos: list[dict[str, str]] = []
        self._pulled = 0
        """getPulls' cursor: replies before it were answered by an earlier call."""

    def clear(self) -> None:
        self._campaigns.clear()
        self._by_sms_id.clear()
        self._mos.clear()
        self._pulled = 0

    def record(
        self, campaign_id: str, cli_msg_id: str, sent: list[tuple[str, str]]
    ) -> dict[str, str]:
        """Remember one accepted send (``sent``: (phone, smsId) pairs).

        Returns:
            smsId → smsMoId of the replies it produced (for the replies webhook).
        """
        when = datetime.now(PARIS).strftime("%Y-%m-%d %H:%M:%S")
        campaign = _Campaign(cli_msg_id)
        replies: dict[str, str] = {}
        for index, (phone, sms_id) in enumerate(sent):
            statut = 5 if phone.endswith(REJECTED_SUFFIX) else 1
            campaign.acks.append(
                {
                    "phoneNumber": phone,
                    "statut": str(statut),
                    "comment": ACK_COMMENTS[statut],
                    "receptionDate": when,
                    "smsId": sms_id,
                }
            )
            self._by_sms_id[sms_id] = (campaign_id, index)
            if statut == 1 and phone.endswith(REPLYING_SUFFIX):
                mo = {
                    "phoneNumber": phone,
                    "id": uuid.uuid4().hex[:16],
                    "campaignId": campaign_id,
                    "message": REPLY_TEXT,
                    "receptionDate": when,
                    "smsId": sms_id,
                    "cliMsgId": cli_msg_id,
                }
                campaign.mos.append(mo)
                self._mos.append(mo)
                replies[sms_id] = mo["id"]
        self._campaigns[campaign_id] = campaign
        self._forget_oldest()
        return replies

    def _forget_oldest(self) -> None:
        while len(self._campaigns) > self._max:
            oldest = self._campaigns.pop(next(iter(self._campaigns)))
            for ack in oldest.acks:
                self._by_sms_id.pop(ack["smsId"], None)
        extra = len(self._mos) - self._max
        if extra > 0:
            # Replies getPulls has not answered yet are kept: it answers each one once.
            drop = min(extra, self._pulled)
            del self._mos[:drop]
            self._pulled -= drop

    def answer(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        """The JSON answer of one lookup endpoint (login already checked).

        Raises:
            ValueError: a required parameter is missing or ``limit`` is not a number; the
                message names it (answered HTTP 200 with status 0 and that text).
        """
        if endpoint == "getAcks":
            campaign = self._campaigns.get(_required(params, "campId"))
            if campaign is None or not campaign.acks:
                return nothing()
            return {
                "acks": [_without(a, "smsId") for a in campaign.acks],
                "cliMsgId": campaign.cli_msg_id,
            }
        if endpoint == "getAckBySmsId":
            found = self._ack(_required(params, "smsId"))
            return nothing() if found is None else found
        if endpoint == "getPulls":
            limit = _limit(params)
            batch = self._mos[self._pulled : self._pulled + limit]
            self._pulled += len(batch)
            return {"mos": [_without(m, "smsId") for m in batch]} if batch else nothing()
        if endpoint == "getPull":
            campaign = self._campaigns.get(_required(params, "campId"))
            if campaign is None or not campaign.mos:
                return nothing()
            return {
                "mos": [_without(m, "smsId") for m in campaign.mos],
                "cliMsgId": campaign.cli_msg_id,
            }
        sms_id = _required(params, "smsId")
        place = self._by_sms_id.get(sms_id)
        mine = self._campaigns[place[0]].mos if place else []
        mos = [m for m in mine if m["smsId"] == sms_id]
        if not mos:
            return nothing()
        mo = mos[0]
        return {
            k: mo[k] for k in ("phoneNumber", "campaignId", "message", "receptionDate", "cliMsgId")
        }

    def _ack(self, sms_id: str) -> dict[str, str] | None:
        place = self._by_sms_id.get(sms_id)
        if place is None:
            return None
        campaign = self._campaigns[place[0]]
        return {**_without(campaign.acks[place[1]], "smsId"), "cliMsgId": campaign.cli_msg_id}


def nothing(text: str = NOTHING_TEXT) -> dict[str, Any]:
    """The answer when there is nothing to return (or a parameter is missing)."""
    return {"status": "0", "statusText": text}


def _without(entry: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in entry.items() if k != name}


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise ValueError(f"{name}: required")
    return value


def _limit(params: dict[str, str]) -> int:
    raw = params.get("limit", "").strip() or str(PULLS_LIMIT_MAX)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError("limit: must be a positive integer")
    return min(int(raw), PULLS_LIMIT_MAX)
