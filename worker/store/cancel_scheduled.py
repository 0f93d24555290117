"""Cancel a ``scheduled`` message (AllMySMS accepted it for a deferred DATE, status 101) by
deleting its campaign there: ``deleteCampaign`` with the ``campaignId`` it answered.

Only the provider's OK makes it ``cancelled`` (compare-and-set ``scheduled`` → ``cancelled``,
history "deleteCampaign OK", a second ``message.final`` callback event saying ``cancelled``).
Any failure leaves it ``scheduled`` and the answer says why: AllMySMS said no (what it said),
was not reached (try again), or may have deleted it without the answer coming back (try again:
a "Campaign not found" then means that try, or the DATE, got there first).

One campaign, one message: the worker posts one sendSms per message or per part of a split
message and records the answer's ``campaignId`` on that record only (``worker.send.sender``),
and the gateway's messages are sent the same way; so deleting a campaign touches no message
but the one being cancelled. A split message's scheduled parts each delete their own campaign.
A delivery receipt already stored for the message proves AllMySMS sent it: the cancel is refused
without asking. A receipt arriving while the cancel runs is kept (receipts live in their own hash
and history entries, which the state change does not touch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from producers import keys
from producers.errors import (
    ConfigError,
    NotSentError,
    OutcomeUnknownError,
    ProviderError,
    ProviderRefusedError,
)
from producers.states import State
from producers.store import MessageStore
from worker.store.deadletters import Decision


if TYPE_CHECKING:
    from collections.abc import Callable

    from redis import Redis

    from producers.records import MessageRecord
    from worker.store.ledger import Ledger

CANCELLED = "cancelled"
REFUSED = "refused"
DELETED_NOTE = "deleteCampaign OK"
NO_CAMPAIGN_ID = (
    "is scheduled but AllMySMS gave no campaignId: cancel it in the AllMySMS customer area"
)
NO_PROVIDER = "is scheduled: cancelling it needs AllMySMS (deleteCampaign), not configured here"
"""Also the refusal when making the client fails on a setting (the ConfigError follows)."""


class CampaignDeleter(Protocol):
    """What deletes a campaign at AllMySMS (``worker.allmysms.client.AllMySmsClient``)."""

    def delete_campaign(self, campaign_id: str) -> None: ...


class ScheduledCanceller:
    """Cancels scheduled messages through ``deleteCampaign``; the deleter is made on first use
    (a cancel of queued messages needs no provider credentials)."""

    def __init__(
        self,
        connection: Redis,
        ledger: Ledger,
        deleter: Callable[[], CampaignDeleter] | None,
    ) -> None:
        self._redis = connection
        self._store = MessageStore(connection)
        self._ledger = ledger
        self._make_deleter = deleter
        self._deleter: CampaignDeleter | None = None

    def cancel(self, record: MessageRecord, *, actor: str, why: str, dry_run: bool) -> Decision:
        """Cancel one scheduled message (not a split parent: its parts come one by one)."""
        refusal = self._refusal(record)
        if refusal:
            return Decision(record.key, REFUSED, refusal, dry_run)
        campaign = str(record.campaign_id)
        if dry_run:
            return Decision(
                record.key,
                CANCELLED,
                f"would delete AllMySMS campaign {campaign} (it is scheduled), then cancel it",
                True,
            )
        try:
            deleter = self._provider()
        except ConfigError as exc:
            return Decision(record.key, REFUSED, f"{NO_PROVIDER} ({exc})")
        try:
            deleter.delete_campaign(campaign)
        except ProviderError as exc:
            return Decision(record.key, REFUSED, _failed(campaign, exc))
        done = self._ledger.finish(
            record.message_id,
            State.CANCELLED,
            {"cancelled_by": actor, "cancel_reason": why},
            expected=State.SCHEDULED,
            reason=f"cancelled by {actor}: {why} ({DELETED_NOTE}, campaign {campaign})",
            actor=actor,
            record={"key": record.key, "lane": record.lane, "job_id": ""},
        )
        if not done:
            now = self._store.get_by_id(record.message_id)
            state = now.state.value if now else "gone"
            return Decision(
                record.key,
                REFUSED,
                f"AllMySMS deleted campaign {campaign}, but the state changed meanwhile to {state}",
            )
        return Decision(record.key, CANCELLED, f"cancelled by {actor}: {why} ({DELETED_NOTE})")

    def _refusal(self, record: MessageRecord) -> str | None:
        if not record.campaign_id:
            return NO_CAMPAIGN_ID
        if self._redis.hlen(keys.receipts(record.message_id)):
            return (
                "is scheduled, but a delivery receipt shows AllMySMS sent it already; it cannot "
                "be cancelled"
            )
        if self._make_deleter is None:
            return NO_PROVIDER
        return None

    def _provider(self) -> CampaignDeleter:
        if self._deleter is None and self._make_deleter is not None:
            self._deleter = self._make_deleter()
        if self._deleter is None:
            raise NotSentError("no AllMySMS client is configured here")
        return self._deleter


def _failed(campaign: str, exc: ProviderError) -> str:
    """Why a deleteCampaign did not cancel: the message stays scheduled."""
    kept = "it stays scheduled"
    if isinstance(exc, ProviderRefusedError):
        said = exc.status_text or f"status {exc.status}"
        return f"AllMySMS refused to delete campaign {campaign}: {said}; {kept}"
    if isinstance(exc, NotSentError):
        return f"AllMySMS was not reached ({exc}); {kept}: try again"
    if isinstance(exc, OutcomeUnknownError):
        return (
            f"AllMySMS may have deleted campaign {campaign}, its answer is missing ({exc}); "
            f"{kept}: try again (a 'Campaign not found' then means it was deleted or sent)"
        )
    return f"deleteCampaign failed ({exc}); {kept}: try again"
