"""``smsq gateway``: AllMySMS v9.0 ``sendSms`` over HTTP, so a backend in any language that
already talks to AllMySMS sends through smsq by changing only its URL (and credentials)."""

from __future__ import annotations

from worker.gateway.app import create_app
from worker.gateway.server import serve


__all__ = ["create_app", "serve"]
