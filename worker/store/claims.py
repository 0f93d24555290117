"""Who holds a ``sending`` message, whether it is still alive, and when the reconciler of a live
worker will settle it if not: what ``smsq status`` says about a send in flight."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.store import decoded


if TYPE_CHECKING:
    from redis import Redis


@dataclass(frozen=True, slots=True)
class Claim:
    worker: str
    """The worker process that claimed the message (``claimed_by``)."""
    claimed_at: float | None
    """Unix seconds of the claim (its score in ``smsq:sending``), None if no longer listed."""
    alive: bool
    """Its alive key still exists."""
    last_beat_at: float | None
    """Unix seconds of its last heartbeat, when still known (kept a day)."""
    dead_after_s: float | None
    """How long after its last heartbeat it counts as dead (its own setting)."""
    awaiting_turn: bool
    """It was waiting for a rate-limit turn, not posting: settled by giving it back unsent."""
    live_workers: int
    """Other live workers, one of which runs the reconciler."""

    def settle_at(self, reconcile_interval_s: float) -> float | None:
        """About when a live worker's reconciler settles this claim, if its worker is silent."""
        if self.alive or self.last_beat_at is None or self.dead_after_s is None:
            return None
        return max(self.last_beat_at + self.dead_after_s, time.time()) + reconcile_interval_s

    def as_dict(self, reconcile_interval_s: float) -> dict[str, Any]:
        settle = self.settle_at(reconcile_interval_s)
        return {
            "worker": self.worker,
            "claimed_at": iso(self.claimed_at),
            "alive": self.alive,
            "last_heartbeat_at": iso(self.last_beat_at),
            "settles": "given back unsent" if self.awaiting_turn else "unknown",
            "settles_at_about": iso(settle),
            "live_workers": self.live_workers,
        }


def iso(unix_s: float | None) -> str | None:
    if unix_s is None:
        return None
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="seconds")


def live_workers(connection: Redis) -> list[str]:
    """Names of the workers RQ lists whose alive key still exists (a killed worker stays in
    RQ's set until its cleanup, but its alive key expires)."""
    names = [
        decoded(m).removeprefix(keys.RQ_WORKER_PREFIX) for m in connection.smembers(keys.RQ_WORKERS)
    ]
    if not names:
        return []
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.exists(keys.alive(name))
    return [name for name, alive in zip(names, pipe.execute(), strict=True) if alive]


def claim_of(connection: Redis, message_id: str) -> Claim | None:
    """The claim on a ``sending`` message, or None if nobody holds one."""
    worker_raw, holder = connection.hmget(keys.message(message_id), ["claimed_by", "awaiting_turn"])
    if not worker_raw:
        return None
    worker = decoded(worker_raw)
    pipe = connection.pipeline(transaction=False)
    pipe.zscore(keys.SENDING, message_id)
    pipe.exists(keys.alive(worker))
    pipe.get(keys.last_beat(worker))
    claimed_at, alive, beat = pipe.execute()
    live = len([name for name in live_workers(connection) if name != worker])
    beat_at, dead_after = _beat(decoded(beat) if beat else "")
    return Claim(
        worker=worker,
        claimed_at=float(claimed_at) if claimed_at is not None else None,
        alive=bool(alive),
        last_beat_at=beat_at,
        dead_after_s=dead_after,
        awaiting_turn=bool(holder),
        live_workers=int(live),
    )


def _beat(value: str) -> tuple[float | None, float | None]:
    at, _, ttl = value.partition(" ")
    try:
        return float(at), float(ttl)
    except ValueError:
        return None, None
