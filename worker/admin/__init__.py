"""``smsq admin``: the operators' web page (lanes, pauses, dead letters) with /metrics and /healthz.

Server-rendered HTML behind one login; meant for loopback or a private network, never the
public internet.
"""

from __future__ import annotations

from worker.admin.app import create_app
from worker.admin.server import serve


__all__ = ["create_app", "serve"]
