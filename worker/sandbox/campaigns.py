"""The sandbox's deferred campaigns: what it accepted with a future DATE, until it is due, and
``deleteCampaign``.

A send answered 101 (or 113 with a future DATE) is remembered with its due time and its cost.
Its delivery receipts are pushed from the due time on, not at once. ``deleteCampaign`` of such a
campaign before it is due answers ``{"status":"OK"}``, gives its credits back and drops its
receipts (it is never "sent"); any other campaign id gets an error answer in the shape of the
sendSms error bodies (see ``worker.allmysms.campaigns``): not found (unknown, or deleted
already), already sent (due), or not deferred (sent at once). The caller holds the lock.
"""

from __future__ import annotations

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
        self._deferred: dict[str, Deferred] = {}
        self._immediate: set[str] = set()

    def clear(self) -> None:
        self._deferred.clear()
        self._immediate.clear()

    def remember(self, campaign_id: str, *, due_at: float | None, credits: int) -> None:
        """Record an accepted send: deferred to ``due_at``, or sent at once (None)."""
        if due_at is None:
            self._immediate.add(campaign_id)
        else:
            self._deferred[campaign_id] = Deferred(due_at, credits)

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
