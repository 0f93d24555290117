"""Worker settings: the only place that reads the environment (``Settings.from_env``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

from producers.config import ProducerSettings, read_bool, read_country, read_float, read_int
from producers.contract import PRODUCER_PATTERN
from producers.errors import ConfigError, InvalidRequestError, PhoneError
from producers.hours import SendingHours
from producers.marketing import Purpose, parse_purpose
from producers.optouts import KEYWORDS, read_keywords
from producers.phones import normalise_phone
from producers.transliterate import Transliteration, parse_transliteration


DEFAULT_BASE_URL = "https://api.allmysms.com/http/9.0"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
"""How long to wait for AllMySMS's answer once the request is sent; past it, the send is unknown."""
WRITE_TIMEOUT_S = 10.0
POOL_TIMEOUT_S = 5.0
SEND_ATTEMPTS = 5
"""POST attempts when AllMySMS provably never received the request (connection refused…)."""
SEND_MAX_WAIT_S = 60.0
"""Total time budget for those attempts and the back-off between them."""
RETRY_INITIAL_WAIT_S = 0.5
RETRY_MAX_WAIT_S = 10.0
LATER_RETRY_FOR_S = 4 * 3600.0
"""How long a provably-unsent message keeps getting later retry rounds before it is failed."""
LATER_RETRY_FIRST_WAIT_S = 60.0
LATER_RETRY_MAX_WAIT_S = 1800.0
"""First and longest wait between two later retry rounds (doubling in between)."""
WORKER_DEAD_AFTER_S = 30.0
"""A worker that has not refreshed its alive key for this long is dead: its in-flight send
becomes ``unknown`` and the jobs it held go back to their lane."""
RECONCILE_INTERVAL_S = 10.0
CREDITS_POLL_INTERVAL_S = 0.0
"""How often one live worker asks AllMySMS ``getInfo`` for the balance (0: never)."""
CREDITS_LOW = 0
"""At or below this many credits the bulk lane is paused (0: no threshold)."""
POLL_INTERVAL_S = 0.0
"""How often one live worker polls AllMySMS for missed receipts and replies (getAcks,
getPulls) and settles ``unknown`` messages from lookups (0: never)."""
POLL_ACKS_AFTER_S = 600.0
"""How long after a send the polling fallback first asks getAcks for it (the webhook's turn)."""
INTAKE_MAX_BYTES = 1 << 20
"""Largest intake entry read (1 MiB: 10,000 recipients with params fit)."""
"""How often some live worker looks for dead workers' messages and stuck jobs."""
CRASH_POINTS = (
    "",
    "after_dequeue",
    "after_start",
    "after_claim",
    "after_send",
    "holding_intake",
)
SEND_SLOTS = 8
"""Sends in flight at once per worker process (threads, each with its keep-alive connection)."""
SEND_SLOTS_MAX = 256
IDLE_WAIT_S = 1.0
"""Longest an idle worker waits before looking at its queues again without a wake token."""
JOB_TIMEOUT_MARGIN_S = 60.0
"""Extra RQ job time beyond the worst-case send, so RQ's timeout never lands mid-request."""
ADMIN_PASSWORD_MIN_CHARS = 12
ADMIN_SECRET_MIN_CHARS = 32
# --- HTTP servers (smsq admin, smsq gateway: worker/asgi.py) ---
SERVER_HEADER_TIMEOUT_S = 10.0
"""Longest a client may take to send a request's line and headers, from its first byte (or from
the connection) to the blank line: a client trickling one byte at a time is cut off here."""
SERVER_BODY_TIMEOUT_S = 60.0
"""Longest a client may take to send a request's body once its headers are in (a 2 MiB gateway
body at 35 KiB/s still fits)."""
TRUSTED_PROXIES_VARIABLE = "SMSQ_TRUSTED_PROXIES"
LOG_FORMATS = ("auto", "json", "console")
# --- gateway (smsq gateway): producer accounts and request limits ---
PRODUCER_SECRET_MIN_CHARS = 16
"""Shortest producer api_key / callback_secret accepted in ``SMSQ_PRODUCERS``."""
PRODUCER_FIELDS = frozenset(
    {
        "login",
        "api_key",
        "callback_secret",
        "purpose",
        "transliterate",
        "daily_quota",
        "monthly_quota",
        "test",
        "allowed_recipients",
    }
)
GATEWAY_MAX_BODY_BYTES = 2 * 1024 * 1024
"""Largest sendSms body the gateway reads: 10,000 recipients in XML fit well below it."""
GATEWAY_MAX_BODY_BYTES_MIN = 1024
GATEWAY_LOGIN_FAILURES_PER_ADDRESS = 20
"""Failed logins from one client address within the window before it is locked out."""
GATEWAY_LOGIN_FAILURES_PER_LOGIN = 100
"""Failed logins for one known login (any addresses) within the window before it is locked out."""
GATEWAY_LOGIN_FAILURE_WINDOW_S = 60.0
GATEWAY_LOCKOUT_S = 300.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LONG_WAIT_S: dict[str, float] = {"urgent": 60.0, "default": 600.0, "bulk": 3600.0}
"""Default of ``SMSQ_LONG_WAIT_S``: one-time codes should not wait a minute."""
BLACKLIST_POLL_INTERVAL_S = 3600.0
"""Default of ``SMSQ_BLACKLIST_POLL_INTERVAL_S``: AllMySMS's STOP list is mirrored hourly."""
AUDIT_TTL_S = 400 * 24 * 3600
"""Default of ``SMSQ_AUDIT_TTL_S``: operator actions are kept 400 days (over a year)."""
AUDIT_TTL_S_MIN = 60
# --- delivery receipts (webhooks) and callbacks to producers ---
WEBHOOK_SECRET_MIN_CHARS = 32
CALLBACK_SECRET_MIN_CHARS = 16
CALLBACK_TIMEOUT_S = 5.0
"""Connect, write and read timeout of one callback POST."""
CALLBACK_MAX_ATTEMPTS = 200
"""More than the age limit allows with the default waits (55 to 105 in 24 h), so by default an
event outlives a receiver outage of up to ``CALLBACK_MAX_AGE_S``, not of a few minutes."""
CALLBACK_MAX_AGE_S = 86_400.0
"""A callback still undelivered this long after its event is given up (dead)."""
CALLBACK_INITIAL_WAIT_S = 2.0
CALLBACK_MAX_WAIT_S = 1_800.0
"""Back-off between callback attempts: doubles from the first wait up to this, with jitter
(after the first half hour, one attempt every 15-30 minutes)."""
ALLOWED_HOSTS_VARIABLE = "SMSQ_CALLBACK_ALLOWED_HOSTS"
ALLOWED_NETWORKS_VARIABLE = "SMSQ_CALLBACK_ALLOWED_NETWORKS"
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
    r"(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
)
"""A DNS name in ASCII (international names in their xn-- form), already lower-case."""
# --- global rate limit (worker/send/ratelimit.py) ---
RATE_LIMIT_RECOVERY_S = 30.0
"""After provider push-back, the shared rate grows back by configured/this per second of success."""


class Secret:
    """Holds a secret; ``repr``/``str`` never show it, so frames, tracebacks and logs stay clean."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class ProducerAccount:
    """One producer allowed to send through ``smsq gateway`` (from ``SMSQ_PRODUCERS``)."""

    login: str
    api_key: Secret = field(repr=False)
    """What the producer sends as ``apiKey``: the gateway's own, never AllMySMS's."""
    callback_secret: Secret | None = field(default=None, repr=False)
    """Signs the callbacks smsq POSTs to this producer; None when it takes none."""
    purpose: Purpose | None = None
    """Every request of this account has this purpose (``"marketing"``: a marketing-only
    account); None: each request says (``purpose``, default transactional)."""
    transliterate: Transliteration | None = None
    """What this account's requests get unless they say (``transliterate``); None:
    ``SMSQ_TRANSLITERATE``."""
    daily_quota: int | None = None
    """SMS (parts x recipients) this account may send per Paris day; None: no limit."""
    monthly_quota: int | None = None
    """The same per Paris calendar month."""
    test: bool = False
    """A test account: its messages are recorded ``sent`` and never posted to AllMySMS."""
    allowed_recipients: tuple[str, ...] | None = None
    """A staging ("team") account may send only to these numbers (international digits);
    others are refused; None: any number."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """How ``smsq admin`` and ``smsq gateway`` read requests (see :mod:`worker.asgi`)."""

    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    """Peers whose X-Forwarded-For / X-Forwarded-Proto are believed; empty: nobody's."""
    header_timeout_s: float = SERVER_HEADER_TIMEOUT_S
    body_timeout_s: float = SERVER_BODY_TIMEOUT_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Read ``SMSQ_TRUSTED_PROXIES`` and the two read deadlines.

        Raises:
            ConfigError: names the variable and the reason.
        """
        env = os.environ if environ is None else environ
        return cls(
            trusted_proxies=read_networks(env, TRUSTED_PROXIES_VARIABLE),
            header_timeout_s=read_float(
                env, "SMSQ_SERVER_HEADER_TIMEOUT_S", SERVER_HEADER_TIMEOUT_S, minimum=0.1
            ),
            body_timeout_s=read_float(
                env, "SMSQ_SERVER_BODY_TIMEOUT_S", SERVER_BODY_TIMEOUT_S, minimum=0.1
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a worker process needs, validated once at start-up."""

    producer: ProducerSettings = field(default_factory=ProducerSettings)
    login: str = ""
    api_key: Secret = field(default_factory=lambda: Secret(""), repr=False)
    base_url: str = DEFAULT_BASE_URL
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    write_timeout_s: float = WRITE_TIMEOUT_S
    pool_timeout_s: float = POOL_TIMEOUT_S
    send_attempts: int = SEND_ATTEMPTS
    send_max_wait_s: float = SEND_MAX_WAIT_S
    retry_initial_wait_s: float = RETRY_INITIAL_WAIT_S
    retry_max_wait_s: float = RETRY_MAX_WAIT_S
    later_retry_for_s: float = LATER_RETRY_FOR_S
    """0 turns later retry rounds off: a provably-unsent message is failed at once."""
    later_retry_first_wait_s: float = LATER_RETRY_FIRST_WAIT_S
    later_retry_max_wait_s: float = LATER_RETRY_MAX_WAIT_S
    idle_wait_s: float = IDLE_WAIT_S
    send_slots: int = SEND_SLOTS
    worker_dead_after_s: float = WORKER_DEAD_AFTER_S
    reconcile_interval_s: float = RECONCILE_INTERVAL_S
    credits_poll_interval_s: float = CREDITS_POLL_INTERVAL_S
    credits_low: int = CREDITS_LOW
    credits_auto_resume: bool = False
    long_wait_s: dict[str, float] = field(default_factory=lambda: dict(LONG_WAIT_S))
    """``SMSQ_LONG_WAIT_S``: per lane, the oldest wait past which it is logged at error and
    shown on the admin overview (0: never)."""
    port: int | None = None
    """``PORT``: the port a Heroku-style platform routes HTTP to (the ``web`` process);
    ``smsq gateway`` listens there when ``--port`` is not given."""
    replies_ttl_s: int = 0
    """``SMSQ_REPLIES_TTL_S``: receipts and replies (a person's own words) are kept at most this
    long; 0: as long as their message (``SMSQ_OUTCOME_TTL_S``)."""
    optout_retention_s: float = 0.0
    """``SMSQ_OPTOUT_RETENTION_S``: opt-outs older than this are dropped; 0: kept until removed."""
    poll_interval_s: float = POLL_INTERVAL_S
    poll_acks_after_s: float = POLL_ACKS_AFTER_S
    blacklist_poll_interval_s: float = BLACKLIST_POLL_INTERVAL_S
    """``SMSQ_BLACKLIST_POLL_INTERVAL_S``: how often one worker mirrors getBlacklist; 0: never."""
    optout_keywords: tuple[str, ...] = KEYWORDS
    """``SMSQ_OPTOUT_KEYWORDS``: a reply whose first word is one of them opts its number out."""
    sending_hours: SendingHours = field(default_factory=SendingHours)
    """When marketing messages may leave (``SMSQ_MARKETING_HOURS``, ``_DAYS``, ``_HOLIDAYS``,
    ``_HOLIDAY_SUBDIVISION``); outside it a worker holds them."""
    intake_max_bytes: int = INTAKE_MAX_BYTES
    crash_at: str = ""
    """Testing only: a named point where the worker process kills itself (``os._exit``)."""
    log_format: str = "auto"
    log_level: str = "INFO"
    admin_user: str = "admin"
    admin_password: Secret = field(default_factory=lambda: Secret(""), repr=False)
    admin_session_secret: Secret = field(default_factory=lambda: Secret(""), repr=False)
    admin_cookie_secure: bool = True
    """The session cookie carries ``Secure``: browsers send it over HTTPS only."""
    server: ServerSettings = field(default_factory=ServerSettings)
    producers: tuple[ProducerAccount, ...] = field(default=(), repr=False)
    """Producer accounts of the gateway (``SMSQ_PRODUCERS``), logins unique."""
    gateway_max_body_bytes: int = GATEWAY_MAX_BODY_BYTES
    gateway_rate_per_s: float = 0.0
    """sendSms requests per second per producer login, counted in Redis; 0 = off."""
    gateway_rate_burst: int = 0
    """Requests one login may send at once; 0 = one second's worth."""
    gateway_login_failures_per_address: int = GATEWAY_LOGIN_FAILURES_PER_ADDRESS
    """0 = no lock-out per address."""
    gateway_login_failures_per_login: int = GATEWAY_LOGIN_FAILURES_PER_LOGIN
    """0 = no lock-out per login."""
    gateway_login_failure_window_s: float = GATEWAY_LOGIN_FAILURE_WINDOW_S
    gateway_lockout_s: float = GATEWAY_LOCKOUT_S
    webhook_secret: Secret = field(default_factory=lambda: Secret(""), repr=False)
    """Path token of the receipt/reply webhooks AllMySMS calls; empty: webhooks off."""
    callback_secret: Secret = field(default_factory=lambda: Secret(""), repr=False)
    """Signs callbacks of requests without a producer account (Python and Redis producers)."""
    callback_timeout_s: float = CALLBACK_TIMEOUT_S
    callback_max_attempts: int = CALLBACK_MAX_ATTEMPTS
    callback_max_age_s: float = CALLBACK_MAX_AGE_S
    callback_initial_wait_s: float = CALLBACK_INITIAL_WAIT_S
    callback_max_wait_s: float = CALLBACK_MAX_WAIT_S
    callback_allowed_hosts: tuple[str, ...] = ()
    """Hosts callbacks may go to, normalised (``*.example.com``: any subdomain); empty: any."""
    callback_allowed_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    """Non-public networks callbacks may reach all the same; empty: public addresses only."""
    rate_limit_segments_per_s: float = 0.0
    """SMS segments per second for the whole AllMySMS account, shared by every worker; 0 = off."""
    rate_limit_burst_segments: int = 0
    """Segments that may go at once after an idle spell; 0 = one second's worth."""
    rate_limit_slow_latency_s: float = 0.0
    """Provider latency (EWMA) that counts as push-back; 0 = three times the usual latency."""
    rate_limit_recovery_s: float = RATE_LIMIT_RECOVERY_S
    audit_ttl_s: int = AUDIT_TTL_S
    """How long the audit stream keeps an operator action (``SMSQ_AUDIT_TTL_S``)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every ``ALLMYSMS_*``/``SMSQ_*`` variable and ``REDIS_URL``.

        Raises:
            ConfigError: names the variable and the reason, never the value.
        """
        env = os.environ if environ is None else environ
        base_url = env.get("ALLMYSMS_BASE_URL", DEFAULT_BASE_URL).strip().rstrip("/")
        if not base_url:
            raise ConfigError(
                "ALLMYSMS_BASE_URL",
                f"is empty; leave it out for AllMySMS itself ({DEFAULT_BASE_URL}) or set the "
                "sandbox's URL",
            )
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise ConfigError("ALLMYSMS_BASE_URL", "must be an http(s) URL")
        log_format = (env.get("SMSQ_LOG_FORMAT") or "auto").lower()
        if log_format not in LOG_FORMATS:
            raise ConfigError("SMSQ_LOG_FORMAT", f"must be one of {', '.join(LOG_FORMATS)}")
        crash_at = env.get("SMSQ_CRASH_AT", "").strip()
        if crash_at not in CRASH_POINTS:
            raise ConfigError("SMSQ_CRASH_AT", f"must be one of {', '.join(CRASH_POINTS[1:])}")
        log_level = (env.get("SMSQ_LOG_LEVEL") or "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError("SMSQ_LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}")
        return cls(
            producer=ProducerSettings.from_env(env),
            login=env.get("ALLMYSMS_LOGIN", "").strip(),
            api_key=Secret(env.get("ALLMYSMS_API_KEY", "").strip()),
            base_url=base_url,
            connect_timeout_s=read_float(
                env, "SMSQ_HTTP_CONNECT_TIMEOUT_S", CONNECT_TIMEOUT_S, minimum=0.01
            ),
            read_timeout_s=read_float(
                env, "SMSQ_HTTP_READ_TIMEOUT_S", READ_TIMEOUT_S, minimum=0.01
            ),
            write_timeout_s=read_float(
                env, "SMSQ_HTTP_WRITE_TIMEOUT_S", WRITE_TIMEOUT_S, minimum=0.01
            ),
            pool_timeout_s=read_float(
                env, "SMSQ_HTTP_POOL_TIMEOUT_S", POOL_TIMEOUT_S, minimum=0.01
            ),
            send_attempts=read_int(env, "SMSQ_SEND_ATTEMPTS", SEND_ATTEMPTS, minimum=1),
            send_max_wait_s=read_float(env, "SMSQ_SEND_MAX_WAIT_S", SEND_MAX_WAIT_S, minimum=0),
            retry_initial_wait_s=read_float(
                env, "SMSQ_RETRY_INITIAL_WAIT_S", RETRY_INITIAL_WAIT_S, minimum=0
            ),
            retry_max_wait_s=read_float(env, "SMSQ_RETRY_MAX_WAIT_S", RETRY_MAX_WAIT_S, minimum=0),
            later_retry_for_s=read_float(
                env, "SMSQ_LATER_RETRY_FOR_S", LATER_RETRY_FOR_S, minimum=0
            ),
            later_retry_first_wait_s=read_float(
                env, "SMSQ_LATER_RETRY_FIRST_WAIT_S", LATER_RETRY_FIRST_WAIT_S, minimum=0.1
            ),
            later_retry_max_wait_s=read_float(
                env, "SMSQ_LATER_RETRY_MAX_WAIT_S", LATER_RETRY_MAX_WAIT_S, minimum=0.1
            ),
            idle_wait_s=read_float(env, "SMSQ_IDLE_WAIT_S", IDLE_WAIT_S, minimum=0.01),
            send_slots=read_int(
                env, "SMSQ_SEND_SLOTS", SEND_SLOTS, minimum=1, maximum=SEND_SLOTS_MAX
            ),
            worker_dead_after_s=read_float(
                env, "SMSQ_WORKER_DEAD_AFTER_S", WORKER_DEAD_AFTER_S, minimum=1
            ),
            reconcile_interval_s=read_float(
                env, "SMSQ_RECONCILE_INTERVAL_S", RECONCILE_INTERVAL_S, minimum=0.1
            ),
            credits_poll_interval_s=read_float(
                env, "SMSQ_CREDITS_POLL_INTERVAL_S", CREDITS_POLL_INTERVAL_S, minimum=0
            ),
            credits_low=read_int(env, "SMSQ_CREDITS_LOW", CREDITS_LOW, minimum=0),
            credits_auto_resume=read_bool(env, "SMSQ_CREDITS_AUTO_RESUME", default=False),
            poll_interval_s=read_float(env, "SMSQ_POLL_INTERVAL_S", POLL_INTERVAL_S, minimum=0),
            poll_acks_after_s=read_float(
                env, "SMSQ_POLL_ACKS_AFTER_S", POLL_ACKS_AFTER_S, minimum=0
            ),
            sending_hours=SendingHours.from_env(env),
            optout_keywords=read_keywords(env.get("SMSQ_OPTOUT_KEYWORDS", "")),
            optout_retention_s=read_optout_retention(env),
            replies_ttl_s=read_int(env, "SMSQ_REPLIES_TTL_S", 0, minimum=0),
            port=read_platform_port(env),
            long_wait_s=read_long_wait(env),
            blacklist_poll_interval_s=read_float(
                env, "SMSQ_BLACKLIST_POLL_INTERVAL_S", BLACKLIST_POLL_INTERVAL_S, minimum=0
            ),
            intake_max_bytes=read_int(
                env, "SMSQ_INTAKE_MAX_BYTES", INTAKE_MAX_BYTES, minimum=1024, maximum=64 << 20
            ),
            crash_at=crash_at,
            log_format=log_format,
            log_level=log_level,
            admin_user=(env.get("SMSQ_ADMIN_USER") or "admin").strip(),
            admin_password=Secret(env.get("SMSQ_ADMIN_PASSWORD", "")),
            admin_session_secret=Secret(env.get("SMSQ_ADMIN_SESSION_SECRET", "")),
            admin_cookie_secure=read_bool(env, "SMSQ_ADMIN_COOKIE_SECURE", default=True),
            server=ServerSettings.from_env(env),
            producers=read_producers(env),
            webhook_secret=_optional_secret(env, "SMSQ_WEBHOOK_SECRET", WEBHOOK_SECRET_MIN_CHARS),
            callback_secret=_optional_secret(
                env, "SMSQ_CALLBACK_SECRET", CALLBACK_SECRET_MIN_CHARS
            ),
            callback_timeout_s=read_float(
                env, "SMSQ_CALLBACK_TIMEOUT_S", CALLBACK_TIMEOUT_S, minimum=0.01
            ),
            callback_max_attempts=read_int(
                env, "SMSQ_CALLBACK_MAX_ATTEMPTS", CALLBACK_MAX_ATTEMPTS, minimum=1
            ),
            callback_max_age_s=read_float(
                env, "SMSQ_CALLBACK_MAX_AGE_S", CALLBACK_MAX_AGE_S, minimum=1
            ),
            callback_initial_wait_s=read_float(
                env, "SMSQ_CALLBACK_INITIAL_WAIT_S", CALLBACK_INITIAL_WAIT_S, minimum=0
            ),
            callback_max_wait_s=read_float(
                env, "SMSQ_CALLBACK_MAX_WAIT_S", CALLBACK_MAX_WAIT_S, minimum=0
            ),
            callback_allowed_hosts=read_allowed_hosts(env),
            callback_allowed_networks=read_allowed_networks(env),
            gateway_max_body_bytes=read_int(
                env,
                "SMSQ_GATEWAY_MAX_BODY_BYTES",
                GATEWAY_MAX_BODY_BYTES,
                minimum=GATEWAY_MAX_BODY_BYTES_MIN,
            ),
            gateway_rate_per_s=read_float(env, "SMSQ_GATEWAY_RATE_PER_S", 0.0, minimum=0),
            gateway_rate_burst=read_int(env, "SMSQ_GATEWAY_RATE_BURST", 0, minimum=0),
            gateway_login_failures_per_address=read_int(
                env,
                "SMSQ_GATEWAY_LOGIN_FAILURES_PER_ADDRESS",
                GATEWAY_LOGIN_FAILURES_PER_ADDRESS,
                minimum=0,
            ),
            gateway_login_failures_per_login=read_int(
                env,
                "SMSQ_GATEWAY_LOGIN_FAILURES_PER_LOGIN",
                GATEWAY_LOGIN_FAILURES_PER_LOGIN,
                minimum=0,
            ),
            gateway_login_failure_window_s=read_float(
                env,
                "SMSQ_GATEWAY_LOGIN_FAILURE_WINDOW_S",
                GATEWAY_LOGIN_FAILURE_WINDOW_S,
                minimum=1,
            ),
            gateway_lockout_s=read_float(
                env, "SMSQ_GATEWAY_LOCKOUT_S", GATEWAY_LOCKOUT_S, minimum=1
            ),
            rate_limit_segments_per_s=read_float(
                env, "SMSQ_RATE_LIMIT_SEGMENTS_PER_S", 0.0, minimum=0
            ),
            rate_limit_burst_segments=read_int(env, "SMSQ_RATE_LIMIT_BURST_SEGMENTS", 0, minimum=0),
            rate_limit_slow_latency_s=read_float(
                env, "SMSQ_RATE_LIMIT_SLOW_LATENCY_S", 0.0, minimum=0
            ),
            rate_limit_recovery_s=read_float(
                env, "SMSQ_RATE_LIMIT_RECOVERY_S", RATE_LIMIT_RECOVERY_S, minimum=0.1
            ),
            audit_ttl_s=read_audit_ttl_s(env),
        )

    def require_credentials(self) -> None:
        """Stop a worker before it touches Redis when it could not authenticate to AllMySMS.

        Raises:
            ConfigError: ``ALLMYSMS_LOGIN`` or ``ALLMYSMS_API_KEY`` is empty.
        """
        if not self.login:
            raise ConfigError("ALLMYSMS_LOGIN", "is required to send (your AllMySMS login)")
        if not self.api_key.reveal():
            raise ConfigError(
                "ALLMYSMS_API_KEY", "is required to send (the API key from your AllMySMS account)"
            )

    def require_admin(self) -> None:
        """Stop ``smsq admin`` at start when its login could not be checked safely.

        Raises:
            ConfigError: the password is missing or shorter than 12 characters, or the session
                secret is shorter than 32 characters.
        """
        if len(self.admin_password.reveal()) < ADMIN_PASSWORD_MIN_CHARS:
            raise ConfigError(
                "SMSQ_ADMIN_PASSWORD",
                f"is required, at least {ADMIN_PASSWORD_MIN_CHARS} characters",
            )
        if len(self.admin_session_secret.reveal()) < ADMIN_SECRET_MIN_CHARS:
            raise ConfigError(
                "SMSQ_ADMIN_SESSION_SECRET",
                f"is required, at least {ADMIN_SECRET_MIN_CHARS} random characters",
            )

    def require_gateway(self) -> None:
        """Stop ``smsq gateway`` at start when no producer could ever authenticate.

        Raises:
            ConfigError: ``SMSQ_PRODUCERS`` is empty.
        """
        if not self.producers:
            raise ConfigError(
                "SMSQ_PRODUCERS",
                'is required by the gateway: a JSON list of {"login", "api_key"} producer accounts',
            )

    @property
    def send_budget_s(self) -> float:
        """Worst case for one send: every connect attempt, the back-off, then one full exchange,
        plus, with the rate limit on, as long again waiting for the limiter (it never waits
        longer per send: the message goes back to its lane instead)."""
        limiter_wait_s = self.send_max_wait_s if self.rate_limit_segments_per_s > 0 else 0.0
        return (
            self.send_attempts * (self.connect_timeout_s + self.pool_timeout_s)
            + self.send_max_wait_s
            + self.write_timeout_s
            + self.read_timeout_s
            + limiter_wait_s
        )

    @property
    def job_timeout_s(self) -> int:
        """RQ's job timeout, derived so that it can never fire during a send."""
        return int(self.send_budget_s + JOB_TIMEOUT_MARGIN_S)


def read_audit_ttl_s(environ: Mapping[str, str] | None = None) -> int:
    """``SMSQ_AUDIT_TTL_S`` alone, for commands that need no other worker setting.

    Raises:
        ConfigError: not a whole number of seconds, or under a minute.
    """
    env = os.environ if environ is None else environ
    return read_int(env, "SMSQ_AUDIT_TTL_S", AUDIT_TTL_S, minimum=AUDIT_TTL_S_MIN)


def read_producers(env: Mapping[str, str]) -> tuple[ProducerAccount, ...]:
    """Parse ``SMSQ_PRODUCERS``, a JSON list of ``{"login", "api_key", "callback_secret",
    "purpose"}`` (the last two optional).

    Raises:
        ConfigError: names the variable, the entry and the reason, never a value.
    """
    name = "SMSQ_PRODUCERS"
    raw = env.get(name, "").strip()
    if not raw:
        return ()
    try:
        entries = json.loads(raw)
    except ValueError:
        raise ConfigError(name, "must be a JSON list of producer objects") from None
    if not isinstance(entries, list):
        raise ConfigError(name, "must be a JSON list of producer objects")
    accounts: list[ProducerAccount] = []
    for index, entry in enumerate(entries):
        where = f"entry {index}"
        if not isinstance(entry, dict):
            raise ConfigError(name, f"{where}: must be an object")
        unknown = sorted(set(entry) - PRODUCER_FIELDS)
        if unknown:
            raise ConfigError(name, f"{where}: unknown field {unknown[0]!r}")
        login = entry.get("login")
        if not isinstance(login, str) or not PRODUCER_PATTERN.fullmatch(login):
            raise ConfigError(
                name,
                f"{where}: login must be 1 to 64 letters, digits, '_', '.' "
                "or '-', starting with a letter or digit",
            )
        if any(a.login == login for a in accounts):
            raise ConfigError(name, f"{where}: login {login!r} appears twice")
        accounts.append(
            ProducerAccount(
                login=login,
                api_key=_producer_secret(entry.get("api_key"), name, f"{where} ({login}): api_key"),
                callback_secret=None
                if entry.get("callback_secret") is None
                else _producer_secret(
                    entry["callback_secret"], name, f"{where} ({login}): callback_secret"
                ),
                purpose=_account_purpose(entry.get("purpose"), name, f"{where} ({login})"),
                transliterate=_account_transliteration(
                    entry.get("transliterate"), name, f"{where} ({login})"
                ),
                daily_quota=_quota(entry.get("daily_quota"), name, f"{where} ({login})", "daily"),
                monthly_quota=_quota(
                    entry.get("monthly_quota"), name, f"{where} ({login})", "monthly"
                ),
                test=_flag(entry.get("test"), name, f"{where} ({login})", "test"),
                allowed_recipients=_allowed(
                    entry.get("allowed_recipients"), name, f"{where} ({login})", env
                ),
            )
        )
    return tuple(accounts)


OPTOUT_RETENTION_MIN_S = 3 * 365 * 24 * 3600
"""The CNIL asks for opposition data to be kept at least 3 years."""


def read_long_wait(env: Mapping[str, str]) -> dict[str, float]:
    """``SMSQ_LONG_WAIT_S``: ``urgent=60,default=600,bulk=3600`` (lanes left out keep their
    default; 0 turns a lane's alert off).

    Raises:
        ConfigError: names the variable.
    """
    name = "SMSQ_LONG_WAIT_S"
    found = dict(LONG_WAIT_S)
    for part in env.get(name, "").replace(" ", "").split(","):
        if not part:
            continue
        lane, _, value = part.partition("=")
        if lane not in found:
            raise ConfigError(name, f"{lane!r}: must name urgent, default or bulk")
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigError(name, f"{lane}: must be a number of seconds") from None
        if not seconds >= 0:
            raise ConfigError(name, f"{lane}: must be at least 0")
        found[lane] = seconds
    return found


def read_platform_port(env: Mapping[str, str]) -> int | None:
    """``PORT`` (1 to 65535), or None when unset.

    Raises:
        ConfigError: names the variable.
    """
    if not env.get("PORT", "").strip():
        return None
    return read_int(env, "PORT", 0, minimum=1, maximum=65535)


def read_optout_retention(env: Mapping[str, str]) -> float:
    """``SMSQ_OPTOUT_RETENTION_S``: 0 (kept until removed) or at least 3 years.

    Raises:
        ConfigError: names the variable.
    """
    value = read_float(env, "SMSQ_OPTOUT_RETENTION_S", 0.0, minimum=0)
    if 0 < value < OPTOUT_RETENTION_MIN_S:
        raise ConfigError(
            "SMSQ_OPTOUT_RETENTION_S",
            f"must be 0 (kept until removed) or at least {OPTOUT_RETENTION_MIN_S} (3 years: the "
            "CNIL asks opposition data to be kept that long)",
        )
    return value


def _account_purpose(value: object, name: str, where: str) -> Purpose | None:
    if value is None:
        return None
    try:
        return parse_purpose(value)
    except InvalidRequestError as error:
        raise ConfigError(name, f"{where}: purpose {error.reason}") from None


def _flag(value: object, name: str, where: str, which: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(name, f"{where}: {which} must be true or false")
    return value


def _allowed(
    value: object, name: str, where: str, env: Mapping[str, str]
) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(name, f"{where}: allowed_recipients must be a list of phone numbers")
    region = read_country(env, "SMSQ_DEFAULT_COUNTRY")
    numbers = []
    for index, phone in enumerate(value):
        try:
            numbers.append(normalise_phone(phone, region))
        except PhoneError as exc:
            raise ConfigError(name, f"{where}: allowed_recipients[{index}]: {exc.reason}") from None
    return tuple(numbers)


def _quota(value: object, name: str, where: str, which: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, f"{where}: {which}_quota must be a whole number of SMS above 0")
    return value


def _account_transliteration(value: object, name: str, where: str) -> Transliteration | None:
    if value is None:
        return None
    try:
        return parse_transliteration(value, Transliteration.NONE)
    except InvalidRequestError as error:
        raise ConfigError(name, f"{where}: transliterate {error.reason}") from None


def normalize_host(host: str) -> str:
    """A host as callbacks compare it: lower-case, without a trailing dot or IPv6 brackets."""
    host = host.strip().lower().rstrip(".")
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def read_allowed_hosts(env: Mapping[str, str]) -> tuple[str, ...]:
    """Parse ``SMSQ_CALLBACK_ALLOWED_HOSTS``: comma-separated host names, ``*.example.com``
    for any subdomain of example.com, or IP addresses; blanks are skipped.

    Raises:
        ConfigError: names the variable and the entry's position, never its value.
    """
    hosts: list[str] = []
    for number, entry in _comma_list(env, ALLOWED_HOSTS_VARIABLE):
        host = normalize_host(entry)
        if _is_ip(host):
            host = str(ip_address(host))
        elif _HOST_NAME.fullmatch(host.removeprefix("*.")) is None:
            raise ConfigError(
                ALLOWED_HOSTS_VARIABLE,
                f"entry {number} is not a host name such "
                "as shop.example.com or *.example.com (international names in "
                "their xn-- form)",
            )
        hosts.append(host)
    return tuple(dict.fromkeys(hosts))


def read_allowed_networks(env: Mapping[str, str]) -> tuple[IPv4Network | IPv6Network, ...]:
    """Parse ``SMSQ_CALLBACK_ALLOWED_NETWORKS`` (see :func:`read_networks`)."""
    return read_networks(env, ALLOWED_NETWORKS_VARIABLE)


def read_networks(env: Mapping[str, str], name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Parse comma-separated CIDRs or single addresses, IPv4 or IPv6; blanks are skipped.

    Raises:
        ConfigError: names the variable and the entry's position, never its value.
    """
    networks: list[IPv4Network | IPv6Network] = []
    for number, entry in _comma_list(env, name):
        try:
            networks.append(ip_network(entry))
        except ValueError:
            raise ConfigError(
                name,
                f"entry {number} is not a network such "
                "as 10.0.0.0/8 or fd00::/8 (an address, or a CIDR whose host bits "
                "are zero)",
            ) from None
    return tuple(dict.fromkeys(networks))


def _comma_list(env: Mapping[str, str], name: str) -> list[tuple[int, str]]:
    """The non-blank entries of a comma-separated variable, with their 1-based positions."""
    entries = [entry.strip() for entry in env.get(name, "").split(",")]
    return [(number, entry) for number, entry in enumerate(entries, start=1) if entry]


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def _optional_secret(env: Mapping[str, str], name: str, min_chars: int) -> Secret:
    """An optional secret: empty, or at least ``min_chars`` characters.

    Raises:
        ConfigError: set but too short (the value is never shown).
    """
    value = env.get(name, "").strip()
    if value and len(value) < min_chars:
        raise ConfigError(name, f"must be at least {min_chars} random characters")
    return Secret(value)


def callback_secret_for(settings: Settings, producer: str) -> Secret | None:
    """The secret that signs a callback: the producer account's ``callback_secret`` when the
    request names one, else ``SMSQ_CALLBACK_SECRET``; None when there is none (never sent
    unsigned)."""
    if producer:
        account = next((a for a in settings.producers if a.login == producer), None)
        return account.callback_secret if account is not None else None
    secret = settings.callback_secret
    return secret if secret.reveal() else None


def _producer_secret(value: object, name: str, where: str) -> Secret:
    if not isinstance(value, str) or len(value) < PRODUCER_SECRET_MIN_CHARS:
        raise ConfigError(
            name, f"{where} must be a string of at least {PRODUCER_SECRET_MIN_CHARS} characters"
        )
    return Secret(value)
