"""Redis connections with bounded timeouts, so a dead Redis is noticed, never waited on forever."""

from __future__ import annotations

from redis import Redis

from worker.settings import Settings


SOCKET_TIMEOUT_S = 30.0
"""Longer than any blocking command smsq issues (the idle wait is at most a few seconds)."""
CONNECT_TIMEOUT_S = 5.0
HEALTH_CHECK_INTERVAL_S = 30


def redis_from_settings(settings: Settings) -> Redis:
    """A client for ``REDIS_URL`` (``redis://``, ``rediss://`` for TLS, user:password allowed)."""
    return Redis.from_url(
        settings.producer.redis_url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        retry_on_timeout=False,
    )
