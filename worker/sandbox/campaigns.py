"""The sandbox's deferred campaigns: what it accepted with a future DATE, until it is due, and
``deleteCampaign``.

A send answered 101 (or 113 with a future DATE) is remembered with its due time and its cost.
Its delivery receipts are pushed from the due time on, not at once. ``deleteCampaign`` of such a
campaign before it is due answers ``{"status":"OK"}``, gives its credits back and drops its
receipts (it is never "sent"); any other campaign id gets an error answer in the shape of the
sendSms error bodies (see ``worker.allmysms.campaigns``): not found (unknown, or deleted
already), already sent (due), or not deferred (sent at once). The caller holds the lock.
It remembers the last ``REMEMBERED_MAX`` campaigns of each kind (a soak or a benchmark sends
millions); an older one is answered "Campaign not found".
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from worker.allmysms.campaigns import (
    ALREADY_SENT,
    DELETED,
    MISSING_CAMP_ID,
    NO_SUCH_CAMPAIGN,
    NOT_DEFERRED,
    refused,
)


REMEMBERED_MAX = 100_000
"""Campaigns remembered per kind (deferred, sent at once); the oldest is forgotten first."""


@dataclass(slots=True)
class Deferred:
    due_at: float
    """When it is sent, epoch seconds (its DATE, read as Paris time)."""
    credits: int
    """What it cost, given back when it is deleted in time."""


class DeferredCampaigns:
    """Campaign ids the sandbox accepted: deferred ones with their due time, sent-at-once ones
    by id only (so deleting one can say why not)."""

    def __init__(self) -> None:
        self._deferred: OrderedDict[str, Deferred] = OrderedDict()
        self._immediate: OrderedDict[str, None] = OrderedDict()

    def clear(self) -> None:
        self._deferred.clear()
        self._immediate.clear()

    def remember(self, campaign_id: str, *, due_at: float | None, credits: int) -> None:
        """Record an accepted send: deferred to ``due_at``, or sent at once (None)."""
        if due_at is None:
            self._immediate[campaign_id] = None
            if len(self._immediate) > REMEMBERED_MAX:
                self._immediate.popitem(last=False)
        else:
            self._deferred[campaign_id] = Deferred(due_at, credits)
            if len(self._deferred) > REMEMBERED_MAX:
                self._deferred.popitem(last=False)

    def is_deferred(self, campaign_id: str, now: float) -> bool:
        """Whether it is a deferred campaign not due yet (cancellable)."""
        found = self._deferred.get(campaign_id)
        return found is not None and found.due_at > now

    def delete(self, campaign_id: str, now: float) -> tuple[dict[str, Any], int]:
        """Answer a deleteCampaign: the reply and the credits to give back (0 unless deleted)."""
        if not campaign_id.strip():
            return refused(MISSING_CAMP_ID), 0
        found = self._deferred.get(campaign_id)
        if found is None:
            text = NOT_DEFERRED if campaign_id in self._immediate else NO_SUCH_CAMPAIGN
            return refused(text), 0
        if found.due_at <= now:
            return refused(ALREADY_SENT), 0
        del self._deferred[campaign_id]
        return dict(DELETED), found.credits
