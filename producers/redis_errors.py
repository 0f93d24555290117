"""Turn redis-py connection failures into one clear smsq error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import redis.exceptions
from redis._parsers.base import BaseParser

from producers.errors import NotReplicatedError, RedisUnavailableError


if TYPE_CHECKING:
    from redis import Redis

    from producers.config import ProducerSettings


REDIS_OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""What redis-py raises when Redis cannot be reached or does not answer in time (an outage, as
opposed to a refused command)."""


class NoReplicasError(redis.exceptions.ReadOnlyError):
    """``NOREPLICAS``: the primary refuses writes while fewer replicas than its
    ``min-replicas-to-write`` are connected (the Sentinel topology's backstop). redis-py has no
    class for it (a plain ``ResponseError``); as a ``ReadOnlyError`` it is waited out, and a
    Sentinel-managed connection reconnects to whichever server is primary by then."""


BaseParser.EXCEPTION_CLASSES.setdefault("NOREPLICAS", NoReplicasError)
REDIS_UNWRITABLE_ERRORS = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    NotReplicatedError,
)
"""Redis answers but refuses writes, or cannot make them durable: full (``maxmemory`` with
``noeviction``), a read-only replica (a failover in progress), too few replicas for
``min-replicas-to-write`` (:class:`NoReplicasError`) or the durability barrier falling short.
All can pass without anyone touching smsq."""
REDIS_UNAVAILABLE_ERRORS = REDIS_OUTAGE_ERRORS + REDIS_UNWRITABLE_ERRORS
"""Everything a long-running process waits out instead of dying on."""


def redis_address(connection: Redis) -> str:
    """Where ``connection`` goes, as ``host:port/db`` (or the socket path), never with its user
    or password."""
    pool = connection.connection_pool
    service = getattr(pool, "service_name", None)
    if service:
        return f"the primary of Sentinel master {service!r}"
    kwargs = pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


RETRY_IS_SAFE = "retrying with the same keys is safe, duplicates are ignored"
"""Said to producers whose enqueue met an outage (and only to them)."""


def url_address(settings: ProducerSettings) -> str:
    """Where ``REDIS_URL`` (or the sentinels) lead, as :func:`redis_address` shows it (no user
    or password)."""
    from redis.connection import parse_url

    if settings.sentinels:
        return f"the primary of Sentinel master {settings.sentinel_master!r}"
    try:
        kwargs = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    except ValueError:
        return "an invalid REDIS_URL"
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


@contextmanager
def translate_redis_errors(
    connection: Redis | None = None, *, retry_hint: bool = False, address: str | None = None
) -> Iterator[None]:
    """Raise :class:`RedisUnavailableError` for connection errors and timeouts.

    The message names the failure class and, given ``connection``, where it goes
    (:func:`redis_address`), never the URL (it may hold a password); with ``retry_hint`` (an
    enqueue) it says that retrying is safe.
    """
    try:
        yield
    except REDIS_OUTAGE_ERRORS as exc:
        if connection is not None:
            address = redis_address(connection)
        where = f" at {address}" if address else ""
        hint = f"; {RETRY_IS_SAFE}" if retry_hint else ""
        raise RedisUnavailableError(
            f"Redis{where} is unreachable ({type(exc).__name__}){hint}"
        ) from exc
    except redis.exceptions.ResponseError as exc:
        raise RedisUnavailableError(f"Redis refused the command: {exc}") from exc
