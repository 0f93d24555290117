"""Redis connections with bounded timeouts, so a dead Redis is noticed, never waited on forever."""

from __future__ import annotations

from typing import TYPE_CHECKING

from producers.connection import connect


if TYPE_CHECKING:
    from redis import Redis

    from worker.settings import Settings


SOCKET_TIMEOUT_S = 30.0
"""Longer than any blocking command smsq issues (the idle wait is at most a few seconds)."""
CONNECT_TIMEOUT_S = 5.0
HEALTH_CHECK_INTERVAL_S = 30


def redis_from_settings(settings: Settings) -> Redis:
    """A client for ``REDIS_URL`` (``redis://``, ``rediss://`` for TLS, user:password allowed),
    or for the primary the sentinels of ``SMSQ_REDIS_SENTINELS`` name."""
    return connect(
        settings.producer,
        socket_timeout_s=SOCKET_TIMEOUT_S,
        connect_timeout_s=CONNECT_TIMEOUT_S,
        health_check_interval_s=HEALTH_CHECK_INTERVAL_S,
        retry_on_timeout=False,
    )


FAILOVER_MARGIN_S = 10.0
"""How much longer than Sentinel's ``down-after-milliseconds`` a worker's silence must last
before it counts as dead: a failover measured here took down-after plus about 1 s (promotion,
clients reconnecting), and one heartbeat lost in the switch must not make a live worker's sends
``unknown``."""


def check_failover_margin(settings: Settings, connection: Redis) -> float | None:
    """In Sentinel mode, refuse a ``SMSQ_WORKER_DEAD_AFTER_S`` that a failover could outlast.

    Returns:
        The sentinels' longest ``down-after-milliseconds`` in seconds, or None when not in
        Sentinel mode or no sentinel answered (then nothing is checked; logged by the caller).

    Raises:
        ConfigError: ``SMSQ_WORKER_DEAD_AFTER_S`` is below down-after + ``FAILOVER_MARGIN_S``.
    """
    from redis.exceptions import RedisError

    from producers.errors import ConfigError

    manager = getattr(connection.connection_pool, "sentinel_manager", None)
    if manager is None:
        return None
    name = settings.producer.sentinel_master
    found: list[float] = []
    for sentinel in manager.sentinels:
        try:
            state = sentinel.sentinel_master(name)
        except RedisError:
            continue
        found.append(float(state.get("down-after-milliseconds", 0)) / 1000)
    if not found:
        return None
    down_after_s = max(found)
    needed_s = down_after_s + FAILOVER_MARGIN_S
    if settings.worker_dead_after_s < needed_s:
        raise ConfigError(
            "SMSQ_WORKER_DEAD_AFTER_S",
            f"must be at least {needed_s:g} with these sentinels: their down-after-milliseconds "
            f"is {down_after_s * 1000:.0f}, and a worker silent for a failover must not be "
            "declared dead (its sends would become unknown)",
        )
    return down_after_s
