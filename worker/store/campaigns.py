"""A campaign's progress: every message enqueued with that ``campaign`` name (a campaign file's
``KEY:n`` requests carry the file's key), counted by recipients in each state, with delivery
from the receipts, when it started, its rate so far and when it should end at that rate.

Messages are found through the campaign index the enqueue script writes
(``smsq:cidx:<hash of the name>``, see :func:`producers.keys.campaign_index`); a message whose
record expired or was purged is dropped from it as it is met.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.states import State
from producers.store import MessageStore, decoded


if TYPE_CHECKING:
    from redis import Redis

    from producers.records import MessageRecord

DONE_STATES = ("sent", "scheduled", "partial", "rejected", "failed", "unknown", "expired")
"""Recipient states that count as gone through (the rest is still to send)."""
READ_BATCH = 500


@dataclass
class CampaignProgress:
    name: str
    messages: int = 0
    recipients: int = 0
    states: dict[str, int] = field(default_factory=dict)
    """Recipients by their message's (or part's) state."""
    delivered: int = 0
    delivery_failed: int = 0
    opted_out: int = 0
    started_at: str | None = None
    last_update_at: str | None = None

    @property
    def done(self) -> int:
        return sum(self.states.get(s, 0) for s in DONE_STATES) + self.states.get("cancelled", 0)

    @property
    def rate_per_min(self) -> float | None:
        """Recipients gone through per minute, from the start to the last update."""
        if not self.started_at or not self.last_update_at:
            return None
        span_s = (
            datetime.fromisoformat(self.last_update_at) - datetime.fromisoformat(self.started_at)
        ).total_seconds()
        sent = sum(self.states.get(s, 0) for s in DONE_STATES)
        return None if span_s <= 0 or not sent else sent / span_s * 60

    def eta(self, now: datetime | None = None) -> str | None:
        """When what is left should be gone at the rate so far (None: no rate, or done)."""
        left = self.recipients - self.done
        rate = self.rate_per_min
        if not left or not rate:
            return None
        moment = (now or datetime.now(UTC)).timestamp() + left / rate * 60
        return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")

    def as_dict(self) -> dict[str, Any]:
        rate = self.rate_per_min
        return {
            "campaign": self.name,
            "messages": self.messages,
            "recipients": self.recipients,
            "states": dict(sorted(self.states.items())),
            "done": self.done,
            "delivered": self.delivered,
            "delivery_failed": self.delivery_failed,
            "opted_out": self.opted_out,
            "started_at": self.started_at,
            "last_update_at": self.last_update_at,
            "rate_per_min": None if rate is None else round(rate, 1),
            "eta": self.eta(),
        }


def campaign_ids(connection: Redis, name: str) -> list[str]:
    """The message ids of campaign ``name``, oldest first."""
    return [decoded(m) for m in connection.zrange(keys.campaign_index(name), 0, -1)]  # type: ignore[arg-type]


def campaign_records(connection: Redis, name: str) -> list[MessageRecord]:
    """The records of campaign ``name`` (split messages with their parts), oldest first; ids
    whose record is gone leave the index."""
    ids = campaign_ids(connection, name)
    store = MessageStore(connection)
    found: list[MessageRecord] = []
    gone: list[str] = []
    for start in range(0, len(ids), READ_BATCH):
        batch = ids[start : start + READ_BATCH]
        for mid, record in zip(batch, store.get_many_by_id(list(batch)), strict=True):
            if record is None:
                gone.append(mid)
            else:
                found.append(record)
    if gone:
        connection.zrem(keys.campaign_index(name), *gone)
    return found


def progress(connection: Redis, name: str) -> CampaignProgress:
    view = CampaignProgress(name)
    for record in campaign_records(connection, name):
        view.messages += 1
        view.recipients += record.recipients
        pieces = record.parts or [{"state": record.state.value, "recipients": record.recipients}]
        for piece in pieces:
            state = str(piece.get("state"))
            view.states[state] = view.states.get(state, 0) + int(piece.get("recipients") or 0)
        delivery = record.delivery
        view.delivered += delivery["delivered"]
        view.delivery_failed += delivery["failed"]
        view.opted_out += len(record.opted_out) + sum(
            1 for r in record.refused_numbers if r.get("reason") == "opted_out"
        )
        if view.started_at is None or (record.created_at or "") < view.started_at:
            view.started_at = record.created_at
        if record.state is not State.QUEUED and (record.updated_at or "") > (
            view.last_update_at or ""
        ):
            view.last_update_at = record.updated_at
    return view
