"""Producer-side settings, read from the environment only when asked."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from producers.errors import ConfigError


N = TypeVar("N", int, float)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_COUNTRY = "FR"
OUTCOME_TTL_S = 30 * 24 * 3600
"""How long a message's outcome, history and dead letter stay readable (30 days)."""
CHUNK_RECIPIENTS = 500
"""Most recipients in one AllMySMS request; a bigger message is split into parts of this size."""
CHUNK_RECIPIENTS_MAX = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ProducerSettings:
    """What producers need: where Redis is, how to read national numbers, how long to keep."""

    redis_url: str = DEFAULT_REDIS_URL
    default_country: str = DEFAULT_COUNTRY
    outcome_ttl_s: int = OUTCOME_TTL_S
    chunk_recipients: int = CHUNK_RECIPIENTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProducerSettings:
        """Read ``REDIS_URL``, ``SMSQ_DEFAULT_COUNTRY``, ``SMSQ_OUTCOME_TTL_S`` and
        ``SMSQ_CHUNK_RECIPIENTS``.

        Raises:
            ConfigError: a value is invalid; names the variable, never its value.
        """
        env = os.environ if environ is None else environ
        return cls(
            redis_url=read_redis_url(env),
            default_country=read_country(env, "SMSQ_DEFAULT_COUNTRY"),
            outcome_ttl_s=read_int(env, "SMSQ_OUTCOME_TTL_S", OUTCOME_TTL_S, minimum=60),
            chunk_recipients=read_int(
                env,
                "SMSQ_CHUNK_RECIPIENTS",
                CHUNK_RECIPIENTS,
                minimum=1,
                maximum=CHUNK_RECIPIENTS_MAX,
            ),
        )

    def __repr__(self) -> str:
        return (
            f"ProducerSettings(redis_url={redact_url(self.redis_url)!r}, "
            f"default_country={self.default_country!r}, outcome_ttl_s={self.outcome_ttl_s}, "
            f"chunk_recipients={self.chunk_recipients})"
        )


def read_int(
    env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    value = _read_number(env, name, default, minimum, int, "a whole number")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be at most {maximum}")
    return value


def read_float(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    return _read_number(env, name, default, minimum, float, "a number")


def _read_number(
    env: Mapping[str, str], name: str, default: N, minimum: N, parse: Callable[[str], N], kind: str
) -> N:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(name, f"must be {kind}") from None
    if not value >= minimum:
        raise ConfigError(name, f"must be at least {minimum}")
    return value


def read_country(env: Mapping[str, str], name: str) -> str:
    import phonenumbers

    value = (env.get(name) or DEFAULT_COUNTRY).strip().upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(name, "must be an ISO 3166 two-letter country code such as FR")
    return value


def redact_url(url: str) -> str:
    """``redis://user:secret@host`` → ``redis://user:***@host``, for messages and reprs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{host}"


REDIS_URL_SCHEMES = ("redis", "rediss", "unix")


def read_redis_url(env: Mapping[str, str]) -> str:
    """``REDIS_URL`` checked the way redis-py will read it, so a typo is one clear line.

    Raises:
        ConfigError: the scheme or the port is wrong; never repeats the URL (it may hold a
            password).
    """
    url = env.get("REDIS_URL", "").strip() or DEFAULT_REDIS_URL
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in REDIS_URL_SCHEMES:
        shown = f"{scheme}://" if sep else "no scheme"
        raise ConfigError(
            "REDIS_URL",
            f"must start with redis://, rediss:// or unix:// ({shown}); "
            "e.g. redis://127.0.0.1:6379/0",
        )
    if scheme.lower() != "unix":
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise ConfigError("REDIS_URL", "has a port that is not a number from 1 to 65535")
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise ConfigError("REDIS_URL", "has a database that is not a number (/0, /1...)")
    return url
