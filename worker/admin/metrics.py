"""Prometheus exposition of :mod:`worker.store.stats`, computed from Redis at scrape time, so every
worker on every host is counted without a multiprocess registry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from worker.store.stats import collect


if TYPE_CHECKING:
    from redis import Redis

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SmsqCollector(Collector):
    def __init__(self, connection: Redis) -> None:
        self._redis = connection

    def collect(self) -> Iterator[Metric]:
        stats = collect(self._redis)
        sends = CounterMetricFamily(
            "smsq_sends", "AllMySMS answers by status and lane", labels=["provider_status", "lane"]
        )
        for (code, lane), count in sorted(stats.provider_statuses.items()):
            sends.add_metric([str(code), lane], count)
        yield sends
        states = CounterMetricFamily(
            "smsq_messages", "Messages that reached each state", labels=["state"]
        )
        for state, count in sorted(stats.states.items()):
            states.add_metric([state], count)
        yield states
        yield CounterMetricFamily(
            "smsq_retries",
            "Connect retries (provably unsent)",
            value=stats.counters.get("retries", 0),
        )
        yield CounterMetricFamily(
            "smsq_requeued",
            "Messages put back in their lane",
            value=stats.counters.get("requeued", 0),
        )
        yield CounterMetricFamily(
            "smsq_dead_letters_recorded",
            "Dead letters recorded",
            value=stats.counters.get("dead_letters", 0),
        )
        yield GaugeMetricFamily(
            "smsq_dead_letters", "Dead letters waiting for an operator", value=stats.dead_letters
        )
        yield GaugeMetricFamily("smsq_sending", "Sends in flight", value=stats.sending)
        yield GaugeMetricFamily(
            "smsq_waiting_later",
            "Messages queued for a later retry round (AllMySMS was not reached)",
            value=stats.waiting_later,
        )
        yield GaugeMetricFamily(
            "smsq_intake_depth", "Raw entries waiting in smsq:intake", value=stats.intake.depth
        )
        yield GaugeMetricFamily(
            "smsq_intake_taken",
            "Intake entries taken by live workers, not yet messages",
            value=stats.intake.taken,
        )
        yield GaugeMetricFamily(
            "smsq_intake_oldest_age_seconds",
            "How long the intake's first entry has been seen waiting (0 when empty)",
            value=stats.intake.oldest_seen_s or 0.0,
        )
        if stats.credits is not None:
            yield GaugeMetricFamily(
                "smsq_credits",
                "Last known AllMySMS credits balance (getInfo or a sendSms answer)",
                value=stats.credits.credits,
            )
            yield GaugeMetricFamily(
                "smsq_credits_age_seconds",
                "How old smsq_credits is",
                value=stats.credits_age_s or 0.0,
            )
        depth = GaugeMetricFamily("smsq_queue_depth", "Jobs waiting per lane", labels=["lane"])
        age = GaugeMetricFamily(
            "smsq_queue_oldest_age_seconds", "Age of the oldest waiting job", labels=["lane"]
        )
        paused = GaugeMetricFamily("smsq_lane_paused", "1 when the lane is paused", labels=["lane"])
        for lane_stats in stats.lanes:
            depth.add_metric([lane_stats.lane], lane_stats.depth)
            age.add_metric([lane_stats.lane], lane_stats.oldest_age_s or 0.0)
            paused.add_metric([lane_stats.lane], 1.0 if lane_stats.paused else 0.0)
        yield depth
        yield age
        yield paused
        yield from _event_counters(stats.counters)
        cumulative, buckets = 0, []
        for bound, count in stats.latency_buckets.items():
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "smsq_provider_latency_seconds",
            "AllMySMS sendSms round trip",
            buckets=buckets,
            sum_value=stats.counters.get("latency_sum_us", 0) / 1_000_000,
        )


EVENT_COUNTERS = {
    "smsq_receipts": (
        "Delivery receipts from AllMySMS, by what smsq did with them",
        "result",
        ("applied", "duplicate", "stale", "unknown"),
        "receipts_",
    ),
    "smsq_replies": (
        "Replies (MO SMS) from AllMySMS",
        "result",
        ("received", "duplicate", "unknown"),
        "replies_",
    ),
    "smsq_unknown_settled": (
        "Unknown messages settled as sent from AllMySMS's evidence, by how",
        "how",
        ("receipt", "reply", "lookup"),
        "unknown_settled:",
    ),
    "smsq_callbacks": (
        "Signed callbacks to producers",
        "result",
        ("enqueued", "delivered", "retried", "dead", "requeued"),
        "callbacks_",
    ),
}
"""Counter family -> (help, label, label values, Redis counter prefix)."""


def _event_counters(counters: dict[str, int]) -> Iterator[Metric]:
    for name, (help_text, label, values, prefix) in EVENT_COUNTERS.items():
        family = CounterMetricFamily(name, help_text, labels=[label])
        for value in values:
            family.add_metric([value], counters.get(prefix + value, 0))
        yield family
    statuses = CounterMetricFamily(
        "smsq_receipt_statuses",
        "Applied receipts by AllMySMS receipt status (1 delivered, "
        "2 not delivered, 3 transmitted, 4/5 rejected)",
        labels=["status"],
    )
    for status in ("1", "2", "3", "4", "5"):
        statuses.add_metric([status], counters.get(f"receipt_status:{status}", 0))
    yield statuses


def render(connection: Redis) -> bytes:
    """The Prometheus text exposition of smsq's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SmsqCollector(connection))
    return generate_latest(registry)
