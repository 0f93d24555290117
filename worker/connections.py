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
