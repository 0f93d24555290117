"""Gateway limits counted in Redis, so they hold across every gateway process: the request rate
of each producer login, and the failed-login throttle (per client address and per login).

Each counter is a key created on its first hit with a time to live (Redis's clock), then
incremented in the same transaction: a fixed window that opens on the first request. The rate
window is ``burst / rate`` seconds long and lets ``burst`` requests through, so the average is
``rate`` per second and at most ``burst`` go at once.

A client address that fails ``SMSQ_GATEWAY_LOGIN_FAILURES_PER_ADDRESS`` times within
``SMSQ_GATEWAY_LOGIN_FAILURE_WINDOW_S`` is locked out for ``SMSQ_GATEWAY_LOCKOUT_S``: every
request from it is answered 429 before any key is compared. A known login that fails
``SMSQ_GATEWAY_LOGIN_FAILURES_PER_LOGIN`` times (from any addresses) is locked out alike, for
that login only: guessing against ``shop`` never locks out ``crm``. Unknown logins are counted
per address only (no Redis key is named after text a stranger sent).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from producers import keys
from producers.redis_errors import translate_redis_errors


if TYPE_CHECKING:
    from redis import Redis

    from worker.settings import Settings

PREFIX = keys.GATEWAY_LIMITS_PREFIX
RATE_PREFIX = f"{PREFIX}rate:"
"""``<prefix><login>``: requests of that login in the current rate window."""
FAILURES_PREFIX = f"{PREFIX}failures:"
"""``<prefix>addr:<sha256 of the address>`` / ``<prefix>login:<login>``: failed logins."""
LOCKOUT_PREFIX = f"{PREFIX}lockout:"
"""Same suffixes: present while that address or login is locked out."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not served now, and when to come back (whole seconds, at least 1)."""

    reason: str
    retry_after_s: int


class GatewayLimits:
    """The rate limit and the failed-login throttle of one gateway, on ``connection``."""

    def __init__(self, connection: Redis, settings: Settings) -> None:
        self._redis = connection
        self.rate_per_s = settings.gateway_rate_per_s
        self.burst = settings.gateway_rate_burst or max(1, math.ceil(self.rate_per_s))
        self.failures_per_address = settings.gateway_login_failures_per_address
        self.failures_per_login = settings.gateway_login_failures_per_login
        self.failure_window_s = settings.gateway_login_failure_window_s
        self.lockout_s = settings.gateway_lockout_s

    def locked_out(self, login: str, address: str, *, known_login: bool) -> Refusal | None:
        """The lock-out in force for this address or (known) login, else None.

        Raises:
            RedisUnavailableError: Redis could not be reached.
        """
        names = [_address_key(LOCKOUT_PREFIX, address)]
        if known_login:
            names.append(f"{LOCKOUT_PREFIX}login:{login}")
        with translate_redis_errors():
            ttls = self._redis.pipeline(transaction=False)
            for name in names:
                ttls.pttl(name)
            left_ms = ttls.execute()
        if left_ms[0] > 0:
            return Refusal("too many failed logins from this address", _seconds(left_ms[0]))
        if len(left_ms) > 1 and left_ms[1] > 0:
            return Refusal(f"too many failed logins for login {login}", _seconds(left_ms[1]))
        return None

    def record_failure(self, login: str, address: str, *, known_login: bool) -> int:
        """Count a failed login; lock the address or the login out once it reaches its limit.

        Returns:
            The address's failures in the current window.

        Raises:
            RedisUnavailableError: Redis could not be reached.
        """
        counters = [(_address_key(FAILURES_PREFIX, address), self.failures_per_address)]
        locks = [_address_key(LOCKOUT_PREFIX, address)]
        if known_login:
            counters.append((f"{FAILURES_PREFIX}login:{login}", self.failures_per_login))
            locks.append(f"{LOCKOUT_PREFIX}login:{login}")
        window_ms = int(self.failure_window_s * 1000)
        with translate_redis_errors():
            counts = [self._hit(name, window_ms) for name, _ in counters]
            for (_, limit), count, lock in zip(counters, counts, locks, strict=True):
                if limit and count >= limit:
                    self._redis.set(lock, 1, px=int(self.lockout_s * 1000), nx=True)
        return counts[0]

    def take_request(self, login: str) -> Refusal | None:
        """Count one request of an authenticated ``login``; a Refusal when over its rate.

        Raises:
            RedisUnavailableError: Redis could not be reached.
        """
        if not self.rate_per_s:
            return None
        window_ms = max(1, int(self.burst / self.rate_per_s * 1000))
        name = f"{RATE_PREFIX}{login}"
        with translate_redis_errors():
            step = self._redis.pipeline(transaction=True)
            step.set(name, 0, px=window_ms, nx=True)
            step.incr(name)
            step.pttl(name)
            _, count, left_ms = step.execute()
        if count <= self.burst:
            return None
        return Refusal(
            f"login {login} is over {self.rate_per_s:g} requests per second (burst {self.burst})",
            _seconds(left_ms),
        )

    def _hit(self, name: str, window_ms: int) -> int:
        step = self._redis.pipeline(transaction=True)
        step.set(name, 0, px=window_ms, nx=True)
        step.incr(name)
        count: int = step.execute()[1]
        return count


def _address_key(prefix: str, address: str) -> str:
    """The address hashed: a key name holds no client address (and no client-chosen text)."""
    return f"{prefix}addr:{hashlib.sha256(address.encode()).hexdigest()[:32]}"


def _seconds(milliseconds: int) -> int:
    return max(1, math.ceil(milliseconds / 1000))
