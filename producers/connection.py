"""The one place a Redis client is built: one primary at ``REDIS_URL``, or the primary the
sentinels of ``SMSQ_REDIS_SENTINELS`` name, with bounded timeouts either way.

A Sentinel client asks the sentinels for the primary whenever it (re)connects; a primary that
was demoted answers ``READONLY``, which redis-py turns into a ``ConnectionError`` and a
reconnect, so the next command goes to the new primary. Every smsq process (and RQ, which is
handed the same client) waits such errors out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from producers.config import ProducerSettings


if TYPE_CHECKING:
    from redis import Redis

SOCKET_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
HEALTH_CHECK_INTERVAL_S = 30
SENTINEL_TIMEOUT_S = 2.0
"""Socket timeouts when asking a sentinel: a dead one is skipped for the next quickly."""


def connect(
    settings: ProducerSettings | None = None,
    *,
    socket_timeout_s: float = SOCKET_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    health_check_interval_s: int = HEALTH_CHECK_INTERVAL_S,
    **kwargs: Any,
) -> Redis:
    """A client for ``settings`` (read from the environment when None)."""
    from redis import Redis

    settings = settings or ProducerSettings.from_env()
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": connect_timeout_s,
        "health_check_interval": health_check_interval_s,
        **kwargs,
    }
    if not settings.sentinels:
        return Redis.from_url(settings.redis_url, **options)
    return _sentinel_master(settings, options)


def _sentinel_master(settings: ProducerSettings, options: dict[str, Any]) -> Redis:
    from redis.connection import parse_url
    from redis.sentinel import Sentinel

    node = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    for name in ("username", "password", "db"):
        if node.get(name) is not None:
            options[name] = node[name]
    if settings.redis_url.lower().startswith("rediss://"):
        options["ssl"] = True
    sentinel_options: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }
    if settings.sentinel_username:
        sentinel_options["username"] = settings.sentinel_username
    if settings.sentinel_password:
        sentinel_options["password"] = settings.sentinel_password
    if settings.sentinel_tls:
        sentinel_options["ssl"] = True
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(settings.sentinels), sentinel_kwargs=sentinel_options
    )
    client: Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        settings.sentinel_master, **options
    )
    return client


def is_sentinel(connection: Redis) -> bool:
    """Whether ``connection`` finds its primary through sentinels."""
    from redis.sentinel import SentinelConnectionPool

    return isinstance(connection.connection_pool, SentinelConnectionPool)
