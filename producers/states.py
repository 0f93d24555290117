"""Message states, as producers and operators read them from the outcome store."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a message is in its life; stored lower-case in Redis."""

    QUEUED = "queued"
    """Accepted and waiting for a worker."""
    SENDING = "sending"
    """A worker claimed it and may be talking to AllMySMS."""
    SENT = "sent"
    """AllMySMS accepted it for every recipient (status 100)."""
    SCHEDULED = "scheduled"
    """AllMySMS accepted it for a deferred DATE (status 101)."""
    PARTIAL = "partial"
    """AllMySMS accepted it for some recipients; the others are listed with reasons."""
    REJECTED = "rejected"
    """AllMySMS refused it (status 102-118); nothing was sent."""
    UNKNOWN = "unknown"
    """The request may have reached AllMySMS; never resent without an operator's decision."""
    EXPIRED = "expired"
    """Its ``valid_for_s`` ran out before a worker could start the send; nothing was sent."""
    FAILED = "failed"
    """AllMySMS could not be reached (provably not sent) or the job could not run."""
    CANCELLED = "cancelled"
    """An operator or producer cancelled it while it was queued; nothing was sent."""


TERMINAL_STATES = frozenset(
    {
        State.SENT,
        State.SCHEDULED,
        State.PARTIAL,
        State.REJECTED,
        State.UNKNOWN,
        State.EXPIRED,
        State.FAILED,
        State.CANCELLED,
    }
)
"""States a message never leaves by itself."""

DEAD_LETTER_STATES = frozenset({State.REJECTED, State.UNKNOWN, State.EXPIRED, State.FAILED})
"""Terminal states that are not a success: each one is also recorded as a dead letter.
``cancelled`` is not one: it was someone's decision, not a failure to look at."""
