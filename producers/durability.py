"""The durability barrier: a write that backs an acknowledgment is acknowledged only once
enough replicas have it, so a Sentinel failover cannot lose it.

Redis replicates asynchronously: a primary that answers "OK" and dies (or is demoted) a moment
later takes that write with it. ``WAIT n timeout`` blocks the calling connection until ``n``
replicas confirm every write it made so far; it must follow the write on the same connection,
outside MULTI and outside Lua (there it returns at once). So the barrier sends the write's
script, a one-key tick and ``WAIT`` as one pipeline on one connection. The tick makes
read-only answers durable too: a duplicate enqueue (the first copy was written by another
connection) or a claim that found nothing to claim waits for everything the primary took
before it, since a replica applies the stream in order.

With ``SMSQ_REDIS_WAIT_AOF`` the barrier uses ``WAITAOF 0 n timeout`` (Redis >= 7.2, Valkey):
the replicas fsynced the writes to their AOF, so a replica restarting at the same moment cannot
drop them either. The local fsync needs no wait with ``appendfsync always``.

Falling short raises :class:`NotReplicatedError`: the write may or may not survive a failover,
so callers treat it as not acknowledged. Every write behind it is idempotent or compare-and-set,
so doing it again (same key, same message) is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.exceptions

from producers import keys
from producers.errors import ConfigError, NotReplicatedError


if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline
    from redis.commands.core import Script

    from producers.config import ProducerSettings


NO_WAITAOF = (
    "this Redis server has no WAITAOF (Redis >= 7.2 or Valkey has it); set it to false to "
    "wait with WAIT"
)


class Barrier:
    """Waits for ``replicas`` replicas after a write; does nothing when ``replicas`` is 0."""

    __slots__ = ("aof", "replicas", "timeout_ms")

    def __init__(self, replicas: int = 0, timeout_ms: int = 1000, *, aof: bool = False) -> None:
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        self.aof = aof

    @classmethod
    def from_settings(cls, settings: ProducerSettings) -> Barrier:
        return cls(settings.wait_replicas, settings.wait_timeout_ms, aof=settings.wait_aof)

    @property
    def enabled(self) -> bool:
        return self.replicas > 0

    @property
    def command(self) -> str:
        return "WAITAOF" if self.aof else "WAIT"

    def run_script(
        self, connection: Redis, script: Script, keys: Sequence[Any] = (), args: Sequence[Any] = ()
    ) -> Any:
        """``script(keys, args)``, then the barrier, on one connection; the script's answer.

        Raises:
            NotReplicatedError: the script ran, but too few replicas confirmed it (the error's
                ``answer`` holds what the script returned).
        """
        if not self.enabled:
            return script(keys=list(keys), args=list(args))
        answer, confirmed = self._run(connection, script, keys, args)
        if isinstance(answer, redis.exceptions.NoScriptError):
            # A new primary after a failover has an empty script cache.
            connection.script_load(script.script)
            answer, confirmed = self._run(connection, script, keys, args)
        if isinstance(answer, Exception):
            raise answer
        self._check(confirmed, answer)
        return answer

    def check_server(self, connection: Redis) -> None:
        """Refuse a server that lacks the barrier's command (WAITAOF before Redis 7.2).

        Raises:
            ConfigError: ``SMSQ_REDIS_WAIT_AOF`` is on and the server has no WAITAOF.
        """
        if not (self.enabled and self.aof):
            return
        # Waiting for nothing answers at once where the command exists (COMMAND INFO of an
        # unknown command breaks redis-py's parser).
        try:
            connection.execute_command("WAITAOF", 0, 0, 0)  # type: ignore[no-untyped-call]
        except redis.exceptions.ResponseError as exc:
            raise self.unsupported(exc) from None

    def unsupported(self, error: BaseException) -> BaseException:
        """``error``, or the ConfigError it means: a server that does not know WAITAOF."""
        if (
            self.aof
            and isinstance(error, redis.exceptions.ResponseError)
            and "waitaof" in str(error).lower()
        ):
            return ConfigError("SMSQ_REDIS_WAIT_AOF", NO_WAITAOF)
        return error

    def confirm(self, connection: Redis) -> None:
        """Make every write the primary took so far durable (a tick, then the wait).

        Raises:
            NotReplicatedError: too few replicas confirmed in time.
        """
        if not self.enabled:
            return
        pipe = connection.pipeline(transaction=False)
        self.append_to(pipe)
        confirmed = pipe.execute(raise_on_error=False)[-1]
        if isinstance(confirmed, Exception):
            raise self.unsupported(confirmed)
        self._check(confirmed, None)

    def append_to(self, pipe: Pipeline) -> None:
        """Queue the tick and the wait at the end of ``pipe`` (check its last answer with
        :meth:`check`)."""
        pipe.incr(keys.BARRIER_TICK)
        pipe.execute_command(*self.wait_command())  # type: ignore[no-untyped-call]

    def wait_command(self) -> list[Any]:
        if self.aof:
            return ["WAITAOF", 0, self.replicas, self.timeout_ms]
        return ["WAIT", self.replicas, self.timeout_ms]

    def check(self, confirmed: Any) -> None:
        """Raise :class:`NotReplicatedError` unless ``confirmed`` (WAIT's or WAITAOF's answer)
        reaches the required replicas."""
        self._check(confirmed, None)

    def _run(
        self, connection: Redis, script: Script, keys: Sequence[Any], args: Sequence[Any]
    ) -> tuple[Any, Any]:
        pipe = connection.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        self.append_to(pipe)
        answers = pipe.execute(raise_on_error=False)
        if isinstance(answers[-1], Exception):
            raise self.unsupported(answers[-1])
        return answers[0], answers[-1]

    def _check(self, confirmed: Any, answer: Any) -> None:
        count = confirmed[1] if isinstance(confirmed, list | tuple) else confirmed
        if int(count) < self.replicas:
            error = NotReplicatedError(int(count), self.replicas, self.timeout_ms, self.command)
            error.answer = answer
            raise error
