"""Per-process dependencies (Redis, HTTP client, ledger, sender), built once per worker."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from functools import partial

from redis import Redis

from producers.durability import Barrier
from producers.optouts import OptOuts
from worker.allmysms.client import AllMySmsClient
from worker.connections import redis_from_settings
from worker.send.blacklist import BlacklistMirror, OptOutRetention
from worker.send.credits import CreditsWatch
from worker.send.long_wait import LongWaitWatch
from worker.send.polling import Poller
from worker.send.ratelimit import RateLimiter
from worker.send.retries import LaterRetry, send_retrying
from worker.send.sender import Sender
from worker.settings import Settings
from worker.store.control import Switch
from worker.store.ledger import Ledger
from worker.store.stop_replies import stop_recorder


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    worker_name: str
    redis: Redis
    client: AllMySmsClient
    ledger: Ledger
    sender: Sender
    credits: CreditsWatch | None = None
    poller: Poller | None = None
    blacklist: BlacklistMirror | None = None
    retention: OptOutRetention | None = None
    long_wait: LongWaitWatch | None = None

    def close(self) -> None:
        """Close the HTTP client's connections (Redis's pool closes with the process)."""
        self.client.close()


def build_runtime(
    settings: Settings, *, redis: Redis | None = None, client: AllMySmsClient | None = None
) -> Runtime:
    """Build the process's dependencies from settings; tests pass their own pieces."""
    connection = redis or redis_from_settings(settings)
    http = client or AllMySmsClient.from_settings(settings)
    name = f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"
    barrier = Barrier.from_settings(settings.producer)
    ledger = Ledger(
        connection, ttl_s=settings.producer.outcome_ttl_s, worker_name=name, barrier=barrier
    )
    watch = CreditsWatch(
        connection,
        http,
        interval_s=settings.credits_poll_interval_s,
        low=settings.credits_low,
        auto_resume=settings.credits_auto_resume,
        by=name,
        audit_ttl_s=settings.audit_ttl_s,
    )
    optouts = OptOuts(connection, key=settings.producer.optout_key, barrier=barrier)
    sender = Sender(
        ledger=ledger,
        client=http,
        retrying=partial(send_retrying, settings),
        later=LaterRetry.from_settings(settings),
        switch=Switch(connection, audit_ttl_s=settings.audit_ttl_s, barrier=barrier),
        limiter=RateLimiter.from_settings(settings, connection),
        on_credits=lambda credits: watch.observe(credits, source="sendSms"),
        hours=settings.sending_hours,
        optouts=optouts,
        optout_transactional=settings.producer.optout_transactional,
    )
    poller = Poller(
        connection,
        http,
        ledger,
        interval_s=settings.poll_interval_s,
        acks_after_s=settings.poll_acks_after_s,
        by=name,
        ttl_s=settings.producer.outcome_ttl_s,
        keep_s=settings.replies_ttl_s,
        stop=stop_recorder(optouts, settings),
    )
    mirror = BlacklistMirror(
        connection,
        http,
        optouts,
        interval_s=settings.blacklist_poll_interval_s,
        default_region=settings.producer.default_country,
        by=name,
    )
    retention = OptOutRetention(
        connection, optouts, retention_s=settings.optout_retention_s, by=name
    )
    return Runtime(
        settings,
        name,
        connection,
        http,
        ledger,
        sender,
        watch,
        poller=poller,
        blacklist=mirror,
        retention=retention,
        long_wait=LongWaitWatch(connection, settings.long_wait_s, by=name),
    )
