"""``smsq demo``: a private redis-server, the sandbox provider, a real worker process, outcomes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.store import MessageStore
from worker.redis_server import RedisServer
from worker.sandbox import SandboxProvider


WORKER_TIMEOUT_S = 120


def demo_requests(now: datetime) -> list[dict[str, Any]]:
    """A personalised multi-recipient campaign, a one-time code, a deferred reminder, a message
    with an invalid number, one to a number on the sandbox's STOP list, a duplicate, a bad one."""
    tomorrow_9am = (now.astimezone(ZoneInfo("Europe/Paris")) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0)
    return [
        {"key": "welcome-2026-11", "campaign": "welcome", "sender": "SmsqDemo",
         "text": "Bonjour #param_1#, votre code de bienvenue est #param_2#.",
         "to": [{"phone": "06 12 34 56 78", "params": ["Alice", "WELCOME10"]},
                {"phone": "+33 7 56 12 34 56", "params": ["Bob", "WELCOME20"]},
                {"phone": "0033698765432", "params": ["Chloé", "WELCOME30"]}]},
        {"key": "otp-user-1001", "lane": "urgent", "valid_for_s": 300,
         "text": "Your smsq login code is 493817. It expires in 5 minutes.", "to": ["0611223344"]},
        {"key": "reminder-appointment-7", "send_at": tomorrow_9am.isoformat(),
         "text": "Rappel : votre rendez-vous est demain à 10h00.", "to": ["0622334455"]},
        {"key": "newsletter-mixed-3", "lane": "bulk", "text": "Nouveautés de novembre !",
         "to": ["0633445566", "0699", "+33 6 44 55 66 77"]},
        {"key": "stop-listed-4", "text": "Offre spéciale", "to": ["0655667788", "0611888888"]},
        {"key": "otp-user-1001", "lane": "urgent", "text": "Your smsq login code is 493817.",
         "to": ["0611223344"]},
        {"key": "broken-5", "text": "", "to": ["0612345678"]},
    ]


def run_demo() -> int:
    api_key = secrets.token_urlsafe(24)
    with RedisServer() as server:
        sandbox = SandboxProvider(login="demo", api_key=api_key)
        sandbox.start()
        try:
            return _run(server, sandbox, api_key)
        finally:
            sandbox.stop()


def _run(server: RedisServer, sandbox: SandboxProvider, api_key: str) -> int:
    connection = Redis.from_url(server.url)
    print(f"redis-server on {server.url}, sandbox AllMySMS on {sandbox.base_url}\n")
    print("1. enqueue (producers.enqueue_many, one Redis round trip):")
    requests = demo_requests(datetime.now().astimezone())
    for result in Producer(connection).enqueue_many(requests):
        print("   " + json.dumps(result.as_dict(), ensure_ascii=False))
    other = {"key": "from-php-backend-6", "text": "Votre colis arrive aujourd'hui.",
             "to": ["0677889900"]}
    connection.rpush(keys.INTAKE, json.dumps(other))
    print(f"   RPUSH {keys.INTAKE} {json.dumps(other, ensure_ascii=False)}  (any language)\n")

    env = {**os.environ, "REDIS_URL": server.url, "ALLMYSMS_LOGIN": "demo",
           "ALLMYSMS_API_KEY": api_key, "ALLMYSMS_BASE_URL": sandbox.base_url,
           "SMSQ_LOG_FORMAT": "json"}
    log_path = Path(tempfile.gettempdir()) / "smsq-demo-worker.log"
    print("2. smsq worker --burst (a real worker process; its JSON log is in "
          f"{log_path})\n")
    with log_path.open("wb") as log_file:
        subprocess.run(
            [sys.executable, "-m", "worker", "worker", "--burst"], env=env, check=True,
            stdout=log_file, stderr=subprocess.STDOUT, timeout=WORKER_TIMEOUT_S)

    print("3. outcomes (smsq status KEY):")
    store = MessageStore(connection)
    keys_seen = list(dict.fromkeys(r["key"] for r in [*requests, other]))
    for key in keys_seen:
        record = store.get(key)
        if record is None:
            print(f"   {key:<24} refused at enqueue (nothing stored)")
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
        print(f"   {key:<24} {record.state.value:<10} {detail}")
    print(f"\n4. the sandbox received {len(sandbox.requests())} sendSms request(s); "
          f"dead letters: {len(store.dead_letters())}")
    return 0
