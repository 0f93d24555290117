"""A callback receiver over a real socket, and the settings and steps callback tests share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from typing import Any

from redis import Redis

from producers import keys
from producers.callbacks import verify_callback
from producers.enqueue import Producer
from producers.states import State
from tests.helpers.processes import ROOT
from worker.callbacks.dispatcher import Dispatcher
from worker.settings import ProducerAccount, Secret, Settings
from worker.store.ledger import Ledger


CALLBACK_SECRET = "cb-fallback-secret-5e1a9c"  # noqa: S105 - a test value
SHOP_SECRET = "shop-callback-secret-7d3b2f"  # noqa: S105 - a test value
TTL_S = 3600
LOOPBACK = "127.0.0.0/8,::1/128"
"""Receivers listen on 127.0.0.1, which callbacks refuse unless SMSQ_CALLBACK_ALLOWED_NETWORKS
allows it."""


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result

    def verified(self, secret: str, **kwargs: Any) -> dict[str, Any]:
        """The event, checked as a receiver checks it (:func:`producers.callbacks.verify_callback`);
        raises its error when the POST does not verify."""
        return verify_callback(self.headers, self.body, secret, **kwargs)


@dataclass
class Receiver:
    """A producer's callback endpoint: records every request, answers from ``statuses`` (then
    200); with ``hold`` set, the first request waits for ``release`` without answering."""

    statuses: list[int] = field(default_factory=list)
    hold: bool = False
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self, port: int = 0) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                    first = len(receiver.received) == 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if first and receiver.hold:
                    receiver.release.wait(30)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.event for r in self.received]


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "callback_secret": Secret(CALLBACK_SECRET),
        "callback_timeout_s": 1.0,
        "callback_initial_wait_s": 0.05,
        "callback_max_wait_s": 0.2,
        "idle_wait_s": 0.05,
        "producers": (
            ProducerAccount("shop", Secret("shop-api-key-0123456789"), Secret(SHOP_SECRET)),
        ),
        "callback_allowed_networks": tuple(ip_network(n) for n in LOOPBACK.split(",")),
    }
    values.update(overrides)
    return Settings(**values)


def finish_sent(
    redis: Redis,
    producer: Producer,
    key: str,
    *,
    callback_url: str | None,
    producer_login: str | None = None,
    sms_ids: dict[str, str] | None = None,
) -> str:
    """Enqueue a message and move it to ``sent`` the way a worker does."""
    request: dict[str, Any] = {
        "key": key,
        "to": ["0612345678", "0698765432"],
        "text": "hello",
        "callback_url": callback_url,
    }
    if producer_login:  # only the gateway names a producer account
        request["producer"] = producer_login
    producer.enqueue(request, source="gateway" if producer_login else "python")
    mid = keys.message_id(key)
    ledger = Ledger(redis, ttl_s=TTL_S, worker_name="test")
    assert ledger.claim(mid).outcome == "claimed"
    assert ledger.finish(
        mid,
        State.SENT,
        {
            "provider_status": 100,
            "provider_text": "Le message a été envoyé",
            "campaign_id": "cmp-1",
            "sms_ids": sms_ids
            if sms_ids is not None
            else {"33612345678": f"{key}-a", "33698765432": f"{key}-b"},
            "invalid_numbers": [],
        },
        reason="100 ok",
        record={"key": key, "lane": "default", "job_id": keys.job_id(mid)},
    )
    return mid


def deliver_all(dispatcher: Dispatcher) -> list[str]:
    outcomes = []
    while (pending := dispatcher.outbox.take()) is not None:
        outcomes.append(dispatcher.deliver(pending))
    return outcomes


def metric(redis: Redis, name: str) -> int:
    return int(redis.hget(keys.METRICS, name) or 0)


def make_dead(
    redis: Redis, *, reason: str, status: int | None = None, attempts: int = 1
) -> list[str]:
    """Give up on every due event the way a dispatcher does (``reason``); their ids."""
    outbox = Dispatcher(settings(), redis).outbox
    ids = []
    while (pending := outbox.take()) is not None:
        outbox.dead(pending.event_id, reason=reason, attempts=attempts, http_status=status)
        ids.append(pending.event_id)
    return ids


def callbacks_env(redis_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a real ``smsq callbacks`` process against the test redis-server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSQ_", "ALLMYSMS_"))}
    env.update(
        {
            "REDIS_URL": redis_url,
            "SMSQ_CALLBACK_SECRET": CALLBACK_SECRET,
            "SMSQ_PRODUCERS": json.dumps(
                [
                    {
                        "login": "shop",
                        "api_key": "shop-api-key-0123456789",
                        "callback_secret": SHOP_SECRET,
                    }
                ]
            ),
            "SMSQ_CALLBACK_TIMEOUT_S": "1",
            "SMSQ_IDLE_WAIT_S": "0.1",
            "SMSQ_LOG_FORMAT": "json",
            "SMSQ_CALLBACK_ALLOWED_NETWORKS": LOOPBACK,
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(overrides)
    return env


def run_callbacks(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``smsq callbacks ARGS`` to completion as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "worker", "callbacks", *args],
        env=callbacks_env(redis_url),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
