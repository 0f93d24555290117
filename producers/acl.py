"""Redis ACL users for smsq's tenants and for smsq itself (Redis >= 7.0 ``ACL SETUSER`` syntax).

Three roles, least privilege first:

* ``redis-producer``: a backend in any language. It may ``RPUSH`` onto ``smsq:intake`` (write
  only: it cannot read or pop other producers' pending requests) and read outcomes
  (``smsq:msg:<id>`` and its history, receipts and replies), and nothing else: no write to
  smsq's state, no script, no ``rq:*`` key, no pause, no admin command, no pub/sub channel.
* ``python-producer``: :class:`producers.Producer` and :class:`producers.MessageStore`. The
  enqueue script (``EVALSHA``, loaded with ``SCRIPT LOAD``; never ``EVAL``) writes the message
  hash and history, the RQ job hash and queue entry, ``rq:queues`` and ``smsq:wake``; Redis
  checks every command a script runs against the caller's ACL, so a script can do no more than
  the user itself. That user can therefore also write message hashes directly (``HSET``,
  ``EXPIRE`` on ``smsq:msg:*``): Redis cannot tell a script's ``HSET`` from a direct one.
  Tenants that must not touch smsq's state should be ``redis-producer``s.
* ``smsq``: workers, callbacks dispatcher, gateway, admin and CLI: smsq's and RQ's keys and
  RQ's channels, every command but ``@dangerous`` ones (``FLUSHALL``, ``CONFIG``, ``DEBUG``,
  ``KEYS``, ``CLIENT LIST``/``KILL``, ``MONITOR``, ``SHUTDOWN``...), plus ``INFO`` (RQ reads the
  server version) and ``CLIENT SETNAME``/``INFO`` (RQ names its connections).

Passwords go in as ``#<sha256>``, so neither a command line, an ACL file nor ``ACL LIST``
holds one in clear.
"""

from __future__ import annotations

import hashlib
import re

from producers import keys
from producers.errors import InvalidInputError


CONNECTION_RULES = ("+ping", "+hello", "+client|setname", "+client|getname", "+client|id")
"""What any client needs to connect (RESP3 ``HELLO``) and name its connection."""
OUTCOME_READ_RULES = (
    "+hget",
    "+hmget",
    "+hgetall",
    "+lrange",
    f"%R~{keys.MESSAGE_PREFIX}*",
    f"%R~{keys.RECEIPTS_PREFIX}*",
    f"%R~{keys.REPLIES_PREFIX}*",
)
"""Reading outcomes as :class:`producers.MessageStore` and ``HGET smsq:msg:<id> state`` do; the
history ``smsq:msg:<id>:history`` falls under ``smsq:msg:*``."""
REDIS_PRODUCER_RULES = (
    "resetchannels",
    *CONNECTION_RULES,
    "+rpush",
    f"%W~{keys.INTAKE}",
    *OUTCOME_READ_RULES,
)
PYTHON_PRODUCER_RULES = (
    "resetchannels",
    *CONNECTION_RULES,
    "+evalsha",
    "+script|load",
    # What the enqueue script (producers/enqueue.py) runs, on the keys it writes.
    "+hexists",
    "+hset",
    "+expire",
    "+rpush",
    "+sadd",
    "+lpush",
    "+ltrim",
    "+get",
    "+set",
    # The durability barrier (producers/durability.py); with SMSQ_REDIS_WAIT_AOF add +waitaof.
    "+incr",
    "+wait",
    f"%W~{keys.BARRIER_TICK}",
    f"%RW~{keys.MESSAGE_PREFIX}*",
    f"%RW~{keys.TOMBSTONE_PREFIX}*",
    f"%W~{keys.RQ_JOB_PREFIX}{keys.JOB_ID_PREFIX}*",
    f"%W~{keys.RQ_QUEUE_PREFIX}{keys.LANE_QUEUE_PREFIX}*",
    "%W~rq:queues",
    f"%W~{keys.WAKE}",
    # The campaign index (smsq campaign NAME): the enqueue script adds each message of one.
    "+zadd",
    f"%W~{keys.CAMPAIGN_INDEX_PREFIX}*",
    # The suppression list: checked at enqueue; a producer may add a number, never remove one.
    "+hsetnx",
    f"%RW~{keys.OPTOUT}",
    *OUTCOME_READ_RULES,
)
WORKER_RULES = (
    "~rq:*",
    f"~{keys.PREFIX}:*",
    "&rq:*",
    "+@all",
    "-@dangerous",
    "+info",
    "+client|setname",
    "+client|info",
)
"""Also the user line in ``deploy/redis.conf``."""
ROLES: dict[str, tuple[str, ...]] = {
    "redis-producer": REDIS_PRODUCER_RULES,
    "python-producer": PYTHON_PRODUCER_RULES,
    "smsq": WORKER_RULES,
}
PASSWORD_MIN_CHARS = 16
_USER = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def rules(role: str, password: str) -> list[str]:
    """The ACL rules of ``role`` for a user with ``password`` (as ``#<sha256>``), ready for
    ``ACL SETUSER <user> reset ...`` or a ``user <user> ...`` line of an ACL file.

    Raises:
        InvalidInputError: an unknown role or a password shorter than 16 characters.
    """
    if role not in ROLES:
        raise InvalidInputError("role", f"must be one of {', '.join(ROLES)}")
    if len(password) < PASSWORD_MIN_CHARS:
        raise InvalidInputError(
            "password", f"must be at least {PASSWORD_MIN_CHARS} random characters"
        )
    digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
    return ["on", f"#{digest}", *ROLES[role]]


def setuser_args(role: str, user: str, password: str) -> list[str]:
    """``ACL SETUSER`` arguments that (re)define ``user`` as ``role`` from scratch (``reset``
    first, so running it again after a change leaves nothing of the old rules).

    Raises:
        InvalidInputError: a bad user name, role or password.
    """
    _check_user(user)
    return ["ACL", "SETUSER", user, "reset", *rules(role, password)]


def config_line(role: str, user: str, password: str) -> str:
    """The ``user`` line for ``redis.conf`` or an ACL file (``aclfile``) defining ``user``.

    Raises:
        InvalidInputError: a bad user name, role or password.
    """
    _check_user(user)
    return " ".join(["user", user, *rules(role, password)])


def _check_user(user: str) -> None:
    if not _USER.fullmatch(user) or user == "default":
        raise InvalidInputError(
            "user", "must be 1 to 64 letters, digits, '_', '.' or '-', and not 'default'"
        )
