"""The workers board: each worker process's host, lanes, send slots, sends done and last
heartbeat, for ``smsq workers`` and the admin page ``/workers``.

Each process writes its hash ``smsq:worker:<name>`` at start and refreshes it with every
heartbeat (the heartbeat thread's own pipeline: no extra round trip), and its name in the sorted
set ``smsq:workers`` scored by that heartbeat. A process that stops cleanly marks its hash
``stopped_at``; one killed leaves it as it was: its alive key expiring tells it is dead. Entries
of processes silent for :data:`BOARD_TTL_S` are dropped, so dead ones stay visible a day.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.store import decoded, decoded_hash


if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

BOARD_TTL_S = 24 * 3600
"""How long a silent worker's entry stays on the board."""


@dataclass(frozen=True, slots=True)
class WorkerView:
    name: str
    state: str
    """``alive``, ``stopped`` (cleanly) or ``dead`` (its alive key expired: killed or lost)."""
    host: str
    pid: int | None
    lanes: tuple[str, ...]
    slots: int | None
    busy: int | None
    sent: int | None
    version: str
    started_at: float | None
    last_beat_at: float | None
    stopped_at: float | None

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "host": self.host,
            "pid": self.pid,
            "lanes": list(self.lanes),
            "slots": self.slots,
            "busy": self.busy,
            "sent": self.sent,
            "version": self.version,
            "started_at": self.started_at,
            "last_beat_at": self.last_beat_at,
            "last_beat_age_s": None
            if self.last_beat_at is None
            else round(max(now - self.last_beat_at, 0.0), 1),
            "stopped_at": self.stopped_at,
        }


def register(connection: Redis, name: str, info: dict[str, str]) -> None:
    """Put a starting worker on the board (host, pid, lanes, slots, version)."""
    now = time.time()
    pipe = connection.pipeline(transaction=False)
    pipe.delete(keys.worker_info(name))
    mapping: dict[Any, Any] = {**info, "started_at": f"{now:.3f}"}
    pipe.hset(keys.worker_info(name), mapping=mapping)
    pipe.expire(keys.worker_info(name), BOARD_TTL_S)
    pipe.zadd(keys.WORKERS, {name: now})
    pipe.execute()


def add_beat(pipe: Pipeline, name: str, fields: dict[str, str]) -> None:
    """The board's part of one heartbeat, on the heartbeat's pipeline."""
    now = time.time()
    mapping: dict[Any, Any] = {**fields, "beat_at": f"{now:.3f}"}
    pipe.hset(keys.worker_info(name), mapping=mapping)
    pipe.expire(keys.worker_info(name), BOARD_TTL_S)
    pipe.zadd(keys.WORKERS, {name: now})
    pipe.zremrangebyscore(keys.WORKERS, "-inf", now - BOARD_TTL_S)


def mark_stopped(connection: Redis, name: str, fields: dict[str, str]) -> None:
    """A worker's last figures and the time it stopped cleanly."""
    mapping: dict[Any, Any] = {**fields, "stopped_at": f"{time.time():.3f}"}
    connection.hset(keys.worker_info(name), mapping=mapping)


def board(connection: Redis) -> list[WorkerView]:
    """Every worker seen within :data:`BOARD_TTL_S`, alive ones first, newest beat first."""
    names = [decoded(n) for n in connection.zrevrange(keys.WORKERS, 0, -1)]  # type: ignore[arg-type]
    if not names:
        return []
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.worker_info(name))
        pipe.exists(keys.alive(name))
    answers = pipe.execute()
    views = []
    for index, name in enumerate(names):
        raw, alive = decoded_hash(answers[2 * index]), bool(answers[2 * index + 1])
        if not raw:
            continue
        state = "alive" if alive else ("stopped" if raw.get("stopped_at") else "dead")
        views.append(
            WorkerView(
                name=name,
                state=state,
                host=raw.get("host", ""),
                pid=_int(raw.get("pid")),
                lanes=tuple(x for x in raw.get("lanes", "").split(",") if x),
                slots=_int(raw.get("slots")),
                busy=_int(raw.get("busy")),
                sent=_int(raw.get("sent")),
                version=raw.get("version", ""),
                started_at=_float(raw.get("started_at")),
                last_beat_at=_float(raw.get("beat_at")),
                stopped_at=_float(raw.get("stopped_at")),
            )
        )
    order = {"alive": 0, "dead": 1, "stopped": 2}
    return sorted(views, key=lambda v: (order[v.state], -(v.last_beat_at or 0)))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
