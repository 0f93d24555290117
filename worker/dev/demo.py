"""``smsq demo``: a private redis-server, the sandbox provider, a real worker process, outcomes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from redis import Redis

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from worker.asgi import running
from worker.dev.demo_loop import CLIENT_MESSAGE_ID, Receiver, post_like_php
from worker.dev.redis_server import RedisServer
from worker.gateway.app import create_app
from worker.gateway.translate import gateway_key
from worker.logs import configure_logging
from worker.sandbox import SandboxProvider
from worker.settings import ProducerAccount, Secret, Settings


WORKER_TIMEOUT_S = 120
RECEIPTS_WAIT_S = 10.0
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"
"""The demo's callback receiver listens on 127.0.0.1, an address callbacks refuse by default."""


def demo_requests(now: datetime) -> list[dict[str, Any]]:
    """A personalised multi-recipient campaign, a one-time code, a deferred reminder, a message
    with an invalid number, one to a number on the sandbox's STOP list, a duplicate, a bad one."""
    tomorrow_9am = (now.astimezone(ZoneInfo("Europe/Paris")) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    return [
        {
            "key": "welcome-2026-11",
            "campaign": "welcome",
            "sender": "SmsqDemo",
            "text": "Bonjour #param_1#, votre code de bienvenue est #param_2#.",
            "to": [
                {"phone": "06 12 34 56 78", "params": ["Alice", "WELCOME10"]},
                {"phone": "+33 7 56 12 34 56", "params": ["Bob", "WELCOME20"]},
                {"phone": "0033698765432", "params": ["Chloé", "WELCOME30"]},
            ],
        },
        {
            "key": "otp-user-1001",
            "lane": "urgent",
            "valid_for_s": 300,
            "text": "Your smsq login code is 493817. It expires in 5 minutes.",
            "to": ["0611223344"],
        },
        {
            "key": "reminder-appointment-7",
            "send_at": tomorrow_9am.isoformat(),
            "text": "Rappel : votre rendez-vous est demain à 10h00.",
            "to": ["0622334455"],
        },
        {
            "key": "newsletter-mixed-3",
            "lane": "bulk",
            "text": "Nouveautés de novembre !",
            "to": ["0633445566", "0699", "+33 6 44 55 66 77"],
        },
        {"key": "stop-listed-4", "text": "Offre spéciale", "to": ["0655667788", "0611888888"]},
        {
            "key": "otp-user-1001",
            "lane": "urgent",
            "text": "Your smsq login code is 493817.",
            "to": ["0611223344"],
        },
        {"key": "broken-5", "text": "", "to": ["0612345678"]},
    ]


def run_demo() -> int:
    # The gateway runs in this process: its own log lines would drown the demo's output.
    configure_logging(level="WARNING", fmt="console")
    api_key = secrets.token_urlsafe(24)
    webhook_secret = secrets.token_hex(16)
    shop = ProducerAccount(
        login="shop",
        api_key=Secret(secrets.token_urlsafe(18)),
        callback_secret=Secret(secrets.token_urlsafe(18)),
    )
    with RedisServer() as server:
        settings = Settings(
            producer=ProducerSettings(redis_url=server.url),
            producers=(shop,),
            webhook_secret=Secret(webhook_secret),
            callback_allowed_networks=tuple(ip_network(n) for n in LOOPBACK_NETWORKS.split(",")),
        )
        connection = Redis.from_url(server.url)
        receiver = Receiver(secret=shop.callback_secret.reveal() if shop.callback_secret else "")
        with (
            running(create_app(settings, connection)) as gateway_url,
            receiver.serving() as callback_url,
        ):
            hooks = f"{gateway_url}/webhooks/allmysms/{webhook_secret}"
            sandbox = SandboxProvider(
                login="demo",
                api_key=api_key,
                receipts_url=f"{hooks}/receipts",
                replies_url=f"{hooks}/replies",
                receipts_delay_ms=100,
            )
            sandbox.start()
            try:
                return _run(
                    server, sandbox, api_key, Loop(gateway_url, shop, receiver, callback_url)
                )
            finally:
                sandbox.stop()


@dataclass(frozen=True)
class Loop:
    gateway_url: str
    shop: ProducerAccount
    receiver: Receiver
    callback_url: str


def _run(server: RedisServer, sandbox: SandboxProvider, api_key: str, loop: Loop) -> int:
    connection = Redis.from_url(server.url)
    print(
        f"redis-server on {server.url}, sandbox AllMySMS on {sandbox.base_url}, "
        f"smsq gateway on {loop.gateway_url}\n"
    )
    print("1. enqueue (producers.enqueue_many, one Redis round trip):")
    requests = demo_requests(datetime.now().astimezone())
    for result in Producer(connection).enqueue_many(requests):
        print("   " + json.dumps(result.as_dict(), ensure_ascii=False))
    other = {
        "key": "from-php-backend-6",
        "text": "Votre colis arrive aujourd'hui.",
        "to": ["0677889900"],
    }
    connection.rpush(keys.INTAKE, json.dumps(other))
    print(f"   RPUSH {keys.INTAKE} {json.dumps(other, ensure_ascii=False)}  (any language)")
    answer = post_like_php(
        loop.gateway_url, loop.shop.login, loop.shop.api_key.reveal(), loop.callback_url
    )
    print(
        f"   POST {loop.gateway_url}/http/9.0/sendSms/ (the AllMySMS page's PHP client, URL "
        f"changed) -> {json.dumps(answer, ensure_ascii=False)}\n"
    )

    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "ALLMYSMS_LOGIN": "demo",
        "ALLMYSMS_API_KEY": api_key,
        "ALLMYSMS_BASE_URL": sandbox.base_url,
        "SMSQ_LOG_FORMAT": "json",
        "SMSQ_CALLBACK_ALLOWED_HOSTS": "",
        "SMSQ_CALLBACK_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
    }
    log_path = Path(tempfile.gettempdir()) / "smsq-demo-worker.log"
    print(f"2. smsq worker --burst (a real worker process; its JSON log is in {log_path})\n")
    with log_path.open("wb") as log_file:
        subprocess.run(
            [sys.executable, "-m", "worker", "worker", "--burst"],
            env=env,
            check=True,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            timeout=WORKER_TIMEOUT_S,
        )

    store = MessageStore(connection)
    keys_seen = [
        *dict.fromkeys(r["key"] for r in [*requests, other]),
        gateway_key(loop.shop.login, CLIENT_MESSAGE_ID),
    ]
    _wait_for_receipts(store, keys_seen)
    print(
        "3. outcomes (smsq status KEY); delivery receipts came back from the sandbox "
        "through the gateway's webhook:"
    )
    for key in keys_seen:
        record = store.get(key)
        if record is None:
            print(f"   {key:<28} refused at enqueue (nothing stored)")
            continue
        detail = f"provider {record.provider_status}" if record.provider_status else ""
        if record.sms_ids:
            detail += f", {len(record.sms_ids)} smsId(s)"
        if record.nb_sms is not None:
            detail += f", {record.nb_sms} SMS billed"
        if record.invalid_numbers:
            detail += f", refused by provider: {len(record.invalid_numbers)}"
        if record.refused_numbers:
            detail += f", refused at enqueue: {len(record.refused_numbers)}"
        if record.receipts:
            detail += ", delivery " + ", ".join(
                f"{n} {what}" for what, n in record.delivery.items() if n
            )
        print(f"   {key:<28} {record.state.value:<10} {detail}")
    posted = sum(1 for r in sandbox.requests() if "data" in r)  # sendSms, not getBlacklist
    print(
        f"\n4. the sandbox received {posted} sendSms request(s); "
        f"dead letters: {len(store.dead_letters())}"
    )
    print("\n5. smsq callbacks --burst: signed events POSTed to the PHP backend's callbackUrl")
    subprocess.run(
        [sys.executable, "-m", "worker", "callbacks", "--burst"],
        check=True,
        env={
            **env,
            "SMSQ_PRODUCERS": json.dumps(
                [
                    {
                        "login": loop.shop.login,
                        "api_key": loop.shop.api_key.reveal(),
                        "callback_secret": loop.receiver.secret,
                    }
                ]
            ),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=WORKER_TIMEOUT_S,
    )
    # Delivery is at least once and not ordered (several dispatcher threads): order by "at".
    for event, signed in sorted(loop.receiver.events, key=lambda e: str(e[0].get("at"))):
        what = event.get("outcome") or event.get("state")
        print(f"   {event['event']:<16} {what:<10} HMAC-SHA256 {'verified' if signed else 'WRONG'}")
    print(NEXT_STEPS)
    return 0


NEXT_STEPS = """
Next steps (this demo's Redis and sandbox are gone; yours stay):
  1. Against your own Redis, still without AllMySMS:
       export ALLMYSMS_LOGIN=demo ALLMYSMS_API_KEY=sandbox-key   # the sandbox's account
       smsq sandbox &
       ALLMYSMS_BASE_URL=http://127.0.0.1:8025/http/9.0 smsq worker &
       echo '{"key": "hello-1", "to": ["0612345678"], "text": "Bonjour"}' | smsq enqueue
       smsq status hello-1          # then: smsq stats, smsq dlq list
  2. From your backend: README "Wire contract v1" (Python, redis-cli, any language) or
     "HTTP gateway" (an existing AllMySMS client: change only its URL and credentials).
  3. For real: cp .env.example .env, set ALLMYSMS_LOGIN and ALLMYSMS_API_KEY, then
     deploy/RUNBOOK.md (Redis durability, ACL users, scaling, alerts) before production.
  Every command: smsq COMMAND --help (it lists the environment variables it reads)."""


def _wait_for_receipts(store: MessageStore, keys_seen: list[str]) -> None:
    """Give the sandbox's receipts (sent 100 ms after each send) time to come back."""
    deadline = time.monotonic() + RECEIPTS_WAIT_S
    while time.monotonic() < deadline:
        records = [store.get(key) for key in keys_seen]
        if all(
            r is None
            or not r.sms_ids
            or r.state is State.SCHEDULED
            or (r.receipts and not r.delivery.get("pending"))
            for r in records
        ):
            return
        time.sleep(0.1)
