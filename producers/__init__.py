"""smsq producers: enqueue SMS send requests into Redis and read their outcomes.

Importing this package loads neither httpx, tenacity nor the ``worker`` package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from producers.cancel_queued import Cancel, Canceller
from producers.config import ProducerSettings
from producers.contract import Lane, SendRequest, parse_request
from producers.cost import estimate
from producers.enqueue import Enqueued, Producer, Refused
from producers.errors import (
    ConfigError,
    InvalidRequestError,
    RedisUnavailableError,
    SmsqError,
)
from producers.records import DeadLetter, MessageRecord
from producers.simulation import Simulation
from producers.states import State
from producers.store import MessageStore


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from redis import Redis

__all__ = [
    "Cancel",
    "Canceller",
    "ConfigError",
    "DeadLetter",
    "Enqueued",
    "InvalidRequestError",
    "Lane",
    "MessageRecord",
    "MessageStore",
    "Producer",
    "ProducerSettings",
    "RedisUnavailableError",
    "Refused",
    "SendRequest",
    "Simulation",
    "SmsqError",
    "State",
    "cancel",
    "enqueue",
    "enqueue_many",
    "estimate",
    "parse_request",
    "status",
]

_default: Producer | None = None


def connect(settings: ProducerSettings | None = None) -> Redis:
    """A Redis client for ``REDIS_URL`` (or the primary of ``SMSQ_REDIS_SENTINELS``) with
    bounded socket timeouts."""
    from producers.connection import connect as connect_redis

    return connect_redis(settings)


def _producer() -> Producer:
    global _default
    if _default is None:
        settings = ProducerSettings.from_env()
        _default = Producer(connect(settings), settings)
    return _default


def enqueue(request: Mapping[str, Any] | SendRequest) -> Enqueued:
    """Enqueue one request with settings from the environment (``REDIS_URL`` …).

    Raises:
        InvalidRequestError: names the field that breaks the contract.
        RedisUnavailableError: Redis could not be reached.
    """
    return _producer().enqueue(request)


def enqueue_many(requests: Iterable[Mapping[str, Any] | SendRequest]) -> list[Enqueued | Refused]:
    """Enqueue a batch (one pipelined script call per ~200 recipients); results in input order."""
    return _producer().enqueue_many(requests)


def cancel(key: str, *, by: str, why: str) -> Cancel:
    """Cancel a ``queued`` message (or the queued parts of a split one) by its key, with
    settings from the environment; a ``scheduled`` one is refused with where to go instead
    (see :mod:`producers.cancel_queued`). A refusal is an answer (``action`` ``refused``), not an
    exception.

    Raises:
        InvalidInputError: ``by`` or ``why`` is blank.
        RedisUnavailableError: Redis could not be reached.
    """
    connection = _producer().connection
    return Canceller(connection, ProducerSettings.from_env()).cancel(key, by=by, why=why)


def status(key: str) -> MessageRecord | None:
    """The outcome record of the message with idempotency key ``key``."""
    return MessageStore(_producer().connection).get(key)
