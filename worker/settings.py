"""Worker settings: the only place that reads the environment (``Settings.from_env``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from producers.config import ProducerSettings, read_float, read_int
from producers.errors import ConfigError


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
WORKER_DEAD_AFTER_S = 30.0
"""A worker that has not refreshed its alive key for this long is dead: its in-flight send
becomes ``unknown`` and the jobs it held go back to their lane."""
RECONCILE_INTERVAL_S = 10.0
"""How often some live worker looks for dead workers' messages and stuck jobs."""
CRASH_POINTS = ("", "after_dequeue", "after_start", "after_claim", "after_send")
SEND_SLOTS = 8
"""Sends in flight at once per worker process (threads, each with its keep-alive connection)."""
SEND_SLOTS_MAX = 256
IDLE_WAIT_S = 1.0
"""Longest an idle worker waits before looking at its queues again without a wake token."""
JOB_TIMEOUT_MARGIN_S = 60.0
"""Extra RQ job time beyond the worst-case send, so RQ's timeout never lands mid-request."""
ADMIN_PASSWORD_MIN_CHARS = 12
ADMIN_SECRET_MIN_CHARS = 32
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
    idle_wait_s: float = IDLE_WAIT_S
    send_slots: int = SEND_SLOTS
    worker_dead_after_s: float = WORKER_DEAD_AFTER_S
    reconcile_interval_s: float = RECONCILE_INTERVAL_S
    crash_at: str = ""
    """Testing only: a named point where the worker process kills itself (``os._exit``)."""
    log_format: str = "auto"
    log_level: str = "INFO"
    admin_user: str = "admin"
    admin_password: Secret = field(default_factory=lambda: Secret(""), repr=False)
    admin_session_secret: Secret = field(default_factory=lambda: Secret(""), repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every ``ALLMYSMS_*``/``SMSQ_*`` variable and ``REDIS_URL``.

        Raises:
            ConfigError: names the variable and the reason, never the value.
        """
        env = os.environ if environ is None else environ
        base_url = (env.get("ALLMYSMS_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
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
            connect_timeout_s=read_float(env, "SMSQ_HTTP_CONNECT_TIMEOUT_S", CONNECT_TIMEOUT_S,
                                         minimum=0.01),
            read_timeout_s=read_float(env, "SMSQ_HTTP_READ_TIMEOUT_S", READ_TIMEOUT_S,
                                      minimum=0.01),
            write_timeout_s=read_float(env, "SMSQ_HTTP_WRITE_TIMEOUT_S", WRITE_TIMEOUT_S,
                                       minimum=0.01),
            pool_timeout_s=read_float(env, "SMSQ_HTTP_POOL_TIMEOUT_S", POOL_TIMEOUT_S,
                                      minimum=0.01),
            send_attempts=read_int(env, "SMSQ_SEND_ATTEMPTS", SEND_ATTEMPTS, minimum=1),
            send_max_wait_s=read_float(env, "SMSQ_SEND_MAX_WAIT_S", SEND_MAX_WAIT_S, minimum=0),
            retry_initial_wait_s=read_float(env, "SMSQ_RETRY_INITIAL_WAIT_S",
                                            RETRY_INITIAL_WAIT_S, minimum=0),
            retry_max_wait_s=read_float(env, "SMSQ_RETRY_MAX_WAIT_S", RETRY_MAX_WAIT_S,
                                        minimum=0),
            idle_wait_s=read_float(env, "SMSQ_IDLE_WAIT_S", IDLE_WAIT_S, minimum=0.01),
            send_slots=read_int(env, "SMSQ_SEND_SLOTS", SEND_SLOTS, minimum=1,
                                maximum=SEND_SLOTS_MAX),
            worker_dead_after_s=read_float(env, "SMSQ_WORKER_DEAD_AFTER_S", WORKER_DEAD_AFTER_S,
                                           minimum=1),
            reconcile_interval_s=read_float(env, "SMSQ_RECONCILE_INTERVAL_S",
                                            RECONCILE_INTERVAL_S, minimum=0.1),
            crash_at=crash_at,
            log_format=log_format,
            log_level=log_level,
            admin_user=(env.get("SMSQ_ADMIN_USER") or "admin").strip(),
            admin_password=Secret(env.get("SMSQ_ADMIN_PASSWORD", "")),
            admin_session_secret=Secret(env.get("SMSQ_ADMIN_SESSION_SECRET", "")),
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
            raise ConfigError("SMSQ_ADMIN_PASSWORD",
                              f"is required, at least {ADMIN_PASSWORD_MIN_CHARS} characters")
        if len(self.admin_session_secret.reveal()) < ADMIN_SECRET_MIN_CHARS:
            raise ConfigError("SMSQ_ADMIN_SESSION_SECRET",
                              f"is required, at least {ADMIN_SECRET_MIN_CHARS} random characters")

    @property
    def send_budget_s(self) -> float:
        """Worst case for one send: every connect attempt, the back-off, then one full exchange."""
        return (self.send_attempts * (self.connect_timeout_s + self.pool_timeout_s)
                + self.send_max_wait_s + self.write_timeout_s + self.read_timeout_s)

    @property
    def job_timeout_s(self) -> int:
        """RQ's job timeout, derived so that it can never fire during a send."""
        return int(self.send_budget_s + JOB_TIMEOUT_MARGIN_S)
