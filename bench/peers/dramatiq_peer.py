"""dramatiq baseline: a Redis broker and one actor POSTing with a module-level httpx.Client.

dramatiq bench.peers.dramatiq_peer --processes 1 --threads 8
"""

from __future__ import annotations

import logging
import os

import dramatiq
import httpx
from dramatiq.brokers.redis import RedisBroker

from bench.peers.flux import form, send_url


broker = RedisBroker(url=os.environ["REDIS_URL"])  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)
client = httpx.Client(timeout=30)
# dramatiq configures logging at INFO, where httpx logs one line per request; smsq and the rq
# baseline log nothing per message either.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dramatiq.actor
def send(key: str, phone: str, text: str) -> None:
    response = client.post(send_url(), data=form(key, phone, text))
    response.raise_for_status()
    status = int(response.json()["status"])
    if status != 100:
        raise RuntimeError(f"AllMySMS status {status}")
