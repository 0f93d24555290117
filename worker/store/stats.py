"""Numbers operators watch: lane depth and age, pauses, in-flight sends, dead letters, and the
monotonic counters workers keep in Redis (states reached, provider statuses, latency)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.contract import LANE_ORDER, queue_name
from producers.store import decoded
from worker.store.claims import live_workers
from worker.store.control import ALL_LANES, Switch
from worker.store.credits import Balance, CreditsStore


if TYPE_CHECKING:
    from redis import Redis

HEAD_SEEN_TTL_S = 30 * 24 * 3600
"""The head marker outlives any plausible stall, and goes once nobody reads the stats."""
LATENCY_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds of the provider latency histogram (Prometheus ``le`` labels)."""


def latency_bucket(seconds: float) -> str:
    """The smallest bucket bound ``seconds`` fits under, or ``+Inf``."""
    for bound in LATENCY_BUCKETS_S:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


@dataclass(frozen=True, slots=True)
class LaneStats:
    lane: str
    depth: int
    oldest_age_s: float | None
    taken: int
    """Jobs taken by workers and not finished (intermediate list + RQ's started registry)."""
    paused: str | None
    """Why the lane is paused, or None."""


@dataclass(frozen=True, slots=True)
class IntakeStats:
    """Raw requests in ``smsq:intake`` (the Redis producers' list) before a worker takes them."""

    depth: int
    taken: int
    """Entries live workers took and have not yet turned into messages or dead letters."""
    oldest_seen_s: float | None
    """How long the entry now at the head has been seen there (None when the list is empty).
    Entries carry no time, so this counts from the first stats read that saw it: a lower bound
    of its age, exact to the interval between reads (a /metrics scrape, ``smsq stats``)."""


@dataclass(frozen=True, slots=True)
class Stats:
    lanes: list[LaneStats]
    sending: int
    dead_letters: int
    counters: dict[str, int] = field(default_factory=dict)
    intake: IntakeStats = field(default_factory=lambda: IntakeStats(0, 0, None))
    credits: Balance | None = None
    """The last known AllMySMS balance (:mod:`worker.store.credits`), None when never learnt."""
    credits_age_s: float | None = None
    """How old ``credits`` was when these stats were read."""
    waiting_later: int = 0
    """Messages ``queued`` for a later retry round (off every lane until it is due)."""

    @property
    def states(self) -> dict[str, int]:
        return {
            k.removeprefix("state:"): v for k, v in self.counters.items() if k.startswith("state:")
        }

    @property
    def provider_statuses(self) -> dict[tuple[int, str], int]:
        out = {}
        for name, value in self.counters.items():
            if name.startswith("provider_status:"):
                _, code, lane = name.split(":")
                out[(int(code), lane)] = value
        return out

    @property
    def latency_buckets(self) -> dict[str, int]:
        """Sends per latency bucket (not cumulative), keyed by upper bound in seconds."""
        return {
            bound: self.counters.get(f"latency_bucket:{bound}", 0)
            for bound in [*(repr(b) for b in LATENCY_BUCKETS_S), "+Inf"]
        }

    @property
    def latency_mean_ms(self) -> float | None:
        count = self.counters.get("latency_count", 0)
        if not count:
            return None
        return self.counters.get("latency_sum_us", 0) / count / 1000

    def as_dict(self) -> dict[str, Any]:
        return {
            "lanes": [vars_of(lane) for lane in self.lanes],
            "intake": {
                "depth": self.intake.depth,
                "taken": self.intake.taken,
                "oldest_seen_s": self.intake.oldest_seen_s,
            },
            "sending": self.sending,
            "dead_letters": self.dead_letters,
            "waiting_later": self.waiting_later,
            "later_parked": self.counters.get("later_parked", 0),
            "held_for_hours": self.counters.get("held_for_hours", 0),
            "states_reached": self.states,
            "provider_statuses": {
                f"{code}:{lane}": n for (code, lane), n in sorted(self.provider_statuses.items())
            },
            "credits": None
            if self.credits is None
            else {
                "balance": self.credits.credits,
                "age_s": self.credits_age_s,
                "source": self.credits.source,
            },
            "retries": self.counters.get("retries", 0),
            "requeued": self.counters.get("requeued", 0),
            "unknown_settled": {
                how: self.counters.get(f"unknown_settled:{how}", 0)
                for how in ("receipt", "reply", "lookup")
            },
            "unknown_ambiguous": self.counters.get("unknown_ambiguous", 0),
            "provider_latency": {
                "count": self.counters.get("latency_count", 0),
                "mean_ms": self.latency_mean_ms,
                "buckets": self.latency_buckets,
            },
        }


def vars_of(lane: LaneStats) -> dict[str, Any]:
    return {
        "lane": lane.lane,
        "depth": lane.depth,
        "oldest_age_s": lane.oldest_age_s,
        "taken": lane.taken,
        "paused": lane.paused,
    }


def collect(connection: Redis) -> Stats:
    """Read everything in two round trips."""
    pipe = connection.pipeline(transaction=False)
    for lane in LANE_ORDER:
        queue = queue_name(lane)
        pipe.llen(keys.rq_queue(queue))
        pipe.lindex(keys.rq_queue(queue), 0)
        pipe.llen(f"{keys.rq_queue(queue)}:intermediate")
        pipe.zcard(f"rq:wip:{queue}")
    pipe.zcard(keys.SENDING)
    pipe.zcard(keys.DEAD_LETTERS)
    pipe.zcard(keys.LATER)
    pipe.hgetall(keys.METRICS)
    raw = pipe.execute()
    pauses = {p.lane: p.reason for p in Switch(connection).paused()}
    heads = [raw[i * 4 + 1] for i in range(len(LANE_ORDER))]
    pipe = connection.pipeline(transaction=False)
    for head in heads:
        pipe.hget(keys.rq_job(decoded(head)), "enqueued_at") if head else pipe.echo("")
    enqueued = pipe.execute()
    now = time.time()
    lanes = []
    for i, lane in enumerate(LANE_ORDER):
        depth, _, intermediate, started = raw[i * 4 : i * 4 + 4]
        stamp = decoded(enqueued[i]) if enqueued[i] else ""
        age = (
            now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            if stamp
            else None
        )
        paused = pauses.get(lane.value) or pauses.get(ALL_LANES)
        lanes.append(
            LaneStats(
                lane.value,
                depth,
                round(age, 3) if age is not None else None,
                intermediate + started,
                paused,
            )
        )
    counters = {decoded(k): int(v) for k, v in raw[-1].items()}
    balance = CreditsStore(connection).get()
    return Stats(
        lanes,
        raw[-4],
        raw[-3],
        counters,
        intake_stats(connection, now),
        balance,
        round(balance.age_s(now), 3) if balance is not None else None,
        waiting_later=raw[-2],
    )


def intake_stats(connection: Redis, now: float) -> IntakeStats:
    """Depth, entries taken by live workers, and how long the head entry has been seen."""
    pipe = connection.pipeline(transaction=False)
    pipe.llen(keys.INTAKE)
    pipe.lindex(keys.INTAKE, 0)
    pipe.get(keys.INTAKE_HEAD_SEEN)
    pipe.llen(keys.INTAKE_PROCESSING)
    depth, head, seen, legacy = pipe.execute()
    names = live_workers(connection)
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.llen(keys.intake_processing(name))
    taken = legacy + sum(pipe.execute() if names else [])
    if head is None:
        return IntakeStats(depth, taken, None)
    digest = hashlib.sha256(head).hexdigest()[:32]
    seen_digest, _, seen_at = decoded(seen or b"").partition(" ")
    if seen_digest == digest and seen_at.replace(".", "", 1).isdigit():
        return IntakeStats(depth, taken, round(max(now - float(seen_at), 0.0), 3))
    connection.set(keys.INTAKE_HEAD_SEEN, f"{digest} {now:.3f}", ex=HEAD_SEEN_TTL_S)
    return IntakeStats(depth, taken, 0.0)
