"""Turn redis-py connection failures into one clear smsq error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import redis.exceptions

from producers.errors import RedisUnavailableError


if TYPE_CHECKING:
    from redis import Redis


REDIS_OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""What redis-py raises when Redis cannot be reached or does not answer in time (an outage, as
opposed to a refused command)."""
REDIS_UNWRITABLE_ERRORS = (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError)
"""Redis answers but refuses writes: full (``maxmemory`` with ``noeviction``) or a read-only
replica (a failover in progress). Both can pass without anyone touching smsq."""
REDIS_UNAVAILABLE_ERRORS = REDIS_OUTAGE_ERRORS + REDIS_UNWRITABLE_ERRORS
"""Everything a long-running process waits out instead of dying on."""


def redis_address(connection: Redis) -> str:
    """Where ``connection`` goes, as ``host:port/db`` (or the socket path), never with its user
    or password."""
    kwargs = connection.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


RETRY_IS_SAFE = "retrying with the same keys is safe, duplicates are ignored"
"""Said to producers whose enqueue met an outage (and only to them)."""


def url_address(url: str) -> str:
    """Where a ``REDIS_URL`` goes, as :func:`redis_address` shows it (no user or password)."""
    from redis.connection import parse_url

    try:
        kwargs = parse_url(url)  # type: ignore[no-untyped-call]
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
