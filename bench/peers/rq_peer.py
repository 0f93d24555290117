"""Plain rq baseline: ``send`` does one ``httpx.post`` per job (no client reuse).

Run with the default forking worker, this module given as its settings module so that the
parent imports httpx once and every work horse inherits it (rq's documented preload)::

    rq worker -c bench.peers.rq_peer -u REDIS_URL default
"""

from __future__ import annotations

import httpx

from bench.peers.flux import form, send_url


def send(key: str, phone: str, text: str) -> int:
    response = httpx.post(send_url(), data=form(key, phone, text), timeout=30)
    response.raise_for_status()
    status = int(response.json()["status"])
    if status != 100:
        raise RuntimeError(f"AllMySMS status {status}")
    return status
