"""Producer-side settings, read from the environment only when asked."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from producers.errors import ConfigError
from producers.marketing import (
    DEFAULT_STOP_RULE,
    STOP_MENTION,
    STOP_MENTION_MAX_CHARS,
    StopPolicy,
    StopRule,
)
from producers.transliterate import Transliteration


N = TypeVar("N", int, float)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_COUNTRY = "FR"
OUTCOME_TTL_S = 30 * 24 * 3600
KEY_MEMORY_S = 400 * 24 * 3600
"""Default of ``SMSQ_KEY_MEMORY_S``: a key is sent at most once for 400 days (over a year)."""
"""How long a message's outcome, history and dead letter stay readable (30 days)."""
CHUNK_RECIPIENTS = 500
"""Most recipients in one AllMySMS request; a bigger message is split into parts of this size."""
CHUNK_RECIPIENTS_MAX = 10_000
BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}
"""What a true/false setting accepts (any case)."""
SENTINEL_MASTER = "smsq"
"""Default of ``SMSQ_REDIS_SENTINEL_MASTER``: the name the sentinels monitor the primary by."""
WAIT_TIMEOUT_MS = 1000
"""Default of ``SMSQ_REDIS_WAIT_TIMEOUT_MS``: how long one write waits for its replicas."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProducerSettings:
    """What producers need: where Redis is, how to read national numbers, how long to keep."""

    redis_url: str = DEFAULT_REDIS_URL
    default_country: str = DEFAULT_COUNTRY
    outcome_ttl_s: int = OUTCOME_TTL_S
    key_memory_s: int = KEY_MEMORY_S
    """How long a key is remembered (its tombstone) after enqueue: a request with the same key
    is answered as a duplicate that long, even once its record expired or was purged; 0: off."""
    chunk_recipients: int = CHUNK_RECIPIENTS
    sentinels: tuple[tuple[str, int], ...] = ()
    """``SMSQ_REDIS_SENTINELS``: the sentinels to ask for the primary; empty: one Redis at
    ``REDIS_URL``. In Sentinel mode ``REDIS_URL`` still gives the data nodes' user, password,
    database and TLS (``rediss://``); its host and port are not used."""
    sentinel_master: str = SENTINEL_MASTER
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    sentinel_tls: bool = False
    wait_replicas: int = 0
    """The durability barrier (``SMSQ_REDIS_WAIT_REPLICAS``): replicas that must confirm every
    write backing an acknowledgment before it is given; 0: off (one primary with AOF)."""
    wait_timeout_ms: int = WAIT_TIMEOUT_MS
    wait_aof: bool = False
    """Use ``WAITAOF 0 N`` (Redis >= 7.2, Valkey): the replicas fsynced the write to their AOF."""
    optout_key: bytes | None = field(default=None, repr=False)
    """``SMSQ_OPTOUT_KEY``: the key of the suppression list's hashes; None: a public one."""
    optout_transactional: bool = False
    """``SMSQ_OPTOUT_TRANSACTIONAL``: transactional messages skip opted-out numbers too."""
    transliteration: Transliteration = Transliteration.NONE
    """``SMSQ_TRANSLITERATE``: what a request that says nothing gets (``none``, ``typography``,
    ``accents``: see :mod:`producers.transliterate`)."""
    stop: StopRule = DEFAULT_STOP_RULE
    """The STOP mention a marketing message with a custom sender carries, and what happens
    when it does not (``SMSQ_MARKETING_STOP_MENTION``, ``SMSQ_MARKETING_STOP_POLICY``)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProducerSettings:
        """Read ``REDIS_URL``, ``SMSQ_DEFAULT_COUNTRY``, ``SMSQ_OUTCOME_TTL_S`` and
        ``SMSQ_CHUNK_RECIPIENTS``.

        Raises:
            ConfigError: a value is invalid; names the variable, never its value.
        """
        env = os.environ if environ is None else environ
        sentinels = read_sentinels(env)
        wait_replicas = read_int(env, "SMSQ_REDIS_WAIT_REPLICAS", 1 if sentinels else 0, minimum=0)
        if sentinels and wait_replicas == 0:
            raise ConfigError(
                "SMSQ_REDIS_WAIT_REPLICAS",
                "must be at least 1 with SMSQ_REDIS_SENTINELS: Sentinel's replication is "
                "asynchronous, so a failover without the barrier loses acknowledged writes",
            )
        return cls(
            redis_url=read_redis_url(env),
            default_country=read_country(env, "SMSQ_DEFAULT_COUNTRY"),
            outcome_ttl_s=read_int(env, "SMSQ_OUTCOME_TTL_S", OUTCOME_TTL_S, minimum=60),
            key_memory_s=read_int(env, "SMSQ_KEY_MEMORY_S", KEY_MEMORY_S, minimum=0),
            chunk_recipients=read_int(
                env,
                "SMSQ_CHUNK_RECIPIENTS",
                CHUNK_RECIPIENTS,
                minimum=1,
                maximum=CHUNK_RECIPIENTS_MAX,
            ),
            sentinels=sentinels,
            sentinel_master=env.get("SMSQ_REDIS_SENTINEL_MASTER", "").strip() or SENTINEL_MASTER,
            sentinel_username=env.get("SMSQ_REDIS_SENTINEL_USERNAME", "").strip() or None,
            sentinel_password=env.get("SMSQ_REDIS_SENTINEL_PASSWORD") or None,
            sentinel_tls=read_bool(env, "SMSQ_REDIS_SENTINEL_TLS", default=False),
            wait_replicas=wait_replicas,
            wait_timeout_ms=read_int(
                env, "SMSQ_REDIS_WAIT_TIMEOUT_MS", WAIT_TIMEOUT_MS, minimum=1, maximum=60_000
            ),
            wait_aof=read_bool(env, "SMSQ_REDIS_WAIT_AOF", default=False),
            stop=read_stop_rule(env),
            transliteration=read_transliteration(env),
            optout_key=read_optout_key(env),
            optout_transactional=read_bool(env, "SMSQ_OPTOUT_TRANSACTIONAL", default=False),
        )

    def __repr__(self) -> str:
        return (
            f"ProducerSettings(redis_url={redact_url(self.redis_url)!r}, "
            f"default_country={self.default_country!r}, outcome_ttl_s={self.outcome_ttl_s}, "
            f"chunk_recipients={self.chunk_recipients}, sentinels={self.sentinels!r}, "
            f"wait_replicas={self.wait_replicas})"
        )


OPTOUT_KEY_MIN_CHARS = 16


def read_transliteration(env: Mapping[str, str]) -> Transliteration:
    """``SMSQ_TRANSLITERATE``: ``none`` (default), ``typography`` or ``accents``.

    Raises:
        ConfigError: names the variable.
    """
    raw = env.get("SMSQ_TRANSLITERATE", "").strip().lower()
    try:
        return Transliteration(raw) if raw else Transliteration.NONE
    except ValueError:
        names = " | ".join(t.value for t in Transliteration)
        raise ConfigError("SMSQ_TRANSLITERATE", f"must be one of {names}") from None


def read_optout_key(env: Mapping[str, str]) -> bytes | None:
    """``SMSQ_OPTOUT_KEY``: at least 16 characters, or empty (the public key).

    Raises:
        ConfigError: names the variable, never its value.
    """
    raw = env.get("SMSQ_OPTOUT_KEY", "")
    if not raw:
        return None
    if len(raw) < OPTOUT_KEY_MIN_CHARS:
        raise ConfigError(
            "SMSQ_OPTOUT_KEY", f"must be at least {OPTOUT_KEY_MIN_CHARS} characters (or empty)"
        )
    return raw.encode("utf-8")


def read_stop_rule(env: Mapping[str, str]) -> StopRule:
    """``SMSQ_MARKETING_STOP_MENTION`` (default "STOP au 36180") and
    ``SMSQ_MARKETING_STOP_POLICY`` (``append``, the default, or ``refuse``).

    Raises:
        ConfigError: names the variable.
    """
    mention = " ".join(env.get("SMSQ_MARKETING_STOP_MENTION", "").split())
    if len(mention) > STOP_MENTION_MAX_CHARS:
        raise ConfigError(
            "SMSQ_MARKETING_STOP_MENTION", f"must be at most {STOP_MENTION_MAX_CHARS} characters"
        )
    raw = env.get("SMSQ_MARKETING_STOP_POLICY", "").strip().lower()
    try:
        policy = StopPolicy(raw) if raw else StopPolicy.APPEND
    except ValueError:
        names = " | ".join(p.value for p in StopPolicy)
        raise ConfigError("SMSQ_MARKETING_STOP_POLICY", f"must be one of {names}") from None
    return StopRule(mention or STOP_MENTION, policy)


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


def read_bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off, any case); empty: ``default``.

    Raises:
        ConfigError: any other value.
    """
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in BOOLEANS:
        raise ConfigError(name, "must be true or false")
    return BOOLEANS[raw]


def read_sentinels(env: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """``SMSQ_REDIS_SENTINELS``: ``host:port`` pairs separated by commas (``[v6]:port`` too).

    Raises:
        ConfigError: an entry without a host or with a port that is not 1-65535.
    """
    name = "SMSQ_REDIS_SENTINELS"
    found: list[tuple[str, int]] = []
    for number, entry in enumerate(env.get(name, "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        host = host.strip("[]")
        if not sep or not host:
            raise ConfigError(name, f"entry {number} must be host:port, e.g. 10.0.0.5:26379")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(name, f"entry {number} has a port that is not a number 1-65535")
        found.append((host, int(port)))
    return tuple(found)


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
