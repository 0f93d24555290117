"""What crash and fault tests wait for: fast reconciler settings and terminal states."""

from __future__ import annotations

from producers.states import TERMINAL_STATES
from producers.store import MessageStore


FAST = {
    "SMSQ_WORKER_DEAD_AFTER_S": "1.5",
    "SMSQ_RECONCILE_INTERVAL_S": "0.3",
    "SMSQ_IDLE_WAIT_S": "0.2",
}


def terminal(store: MessageStore, *keys: str) -> bool:
    records = [store.get(key) for key in keys]
    return all(r is not None and r.state in TERMINAL_STATES for r in records)
