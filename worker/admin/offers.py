"""Which operator actions a message's page offers, and one line for each one it does not.

The rules are the dead-letter desk's (``smsq dlq``): requeue only what AllMySMS provably did
not send, resolve only ``unknown``, purge only an existing dead letter. The page asks the desk's
own guards, so it never shows a form whose action the desk would then refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from producers.states import State
from worker.store.deadletters import requeue_refusal, resolve_refusal


if TYPE_CHECKING:
    from producers.records import DeadLetter, MessageRecord

ACTIONS = ("requeue", "resolve", "purge")
_IN_PROGRESS = "it is {state}: a worker has it or will take it; nothing to decide yet"
_WHY_NO_REQUEUE = {
    State.UNKNOWN: "an unknown message may have been sent; resolve it first (as not sent, it "
    "can then be requeued)",
    State.EXPIRED: "it expired (its valid_for_s passed); enqueue a new message with a new key",
    State.SENT: "AllMySMS accepted it; smsq never sends a message twice",
    State.SCHEDULED: "AllMySMS accepted it for a later time; smsq never sends a message twice",
    State.PARTIAL: "AllMySMS accepted it for some recipients; smsq never sends a message twice "
    "(enqueue a new message with a new key for the others)",
    State.QUEUED: _IN_PROGRESS.format(state="queued"),
    State.SENDING: _IN_PROGRESS.format(state="sending"),
}


@dataclass(frozen=True, slots=True)
class Offer:
    action: str
    """``requeue``, ``resolve`` or ``purge``."""
    why_not: str | None
    """None when the page offers the action; else why not (also the refusal of a POST)."""

    @property
    def line(self) -> str | None:
        """The page's line for an action it does not offer."""
        return (
            None
            if self.why_not is None
            else f"{self.action.capitalize()}: not offered, {self.why_not}."
        )


def offers(record: MessageRecord, letter: DeadLetter | None) -> dict[str, Offer]:
    """The page's offer for each of :data:`ACTIONS`, by action.

    A split message is requeued as a whole (the desk requeues exactly its parts AllMySMS
    provably did not send); it is resolved and purged part by part, on each part's page.
    """
    requeue = requeue_refusal(record)
    split = len(record.part_ids)
    return {
        "requeue": Offer(
            "requeue",
            None if requeue is None else requeue if split else _no_requeue(record),
        ),
        "resolve": Offer(
            "resolve",
            None
            if resolve_refusal(record) is None
            else _by_part(split, "an unknown part is resolved")
            if split
            else _no_resolve(record),
        ),
        "purge": Offer(
            "purge",
            None
            if letter is not None
            else _by_part(split, "a part's dead letter is purged")
            if split
            else "this message has no dead letter to forget",
        ),
    }


def _no_requeue(record: MessageRecord) -> str:
    return _WHY_NO_REQUEUE.get(record.state, f"it is {record.state.value}")


def _no_resolve(record: MessageRecord) -> str:
    return f"only an unknown message is resolved, and this one is {record.state.value}"


def _by_part(count: int, what: str) -> str:
    return f"this message is split into {count} parts; {what} on its own page (Parts, below)"
