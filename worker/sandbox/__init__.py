"""``smsq sandbox``: a local stand-in for the AllMySMS HTTP API v9.0 sendSms, with faults."""

from __future__ import annotations

from worker.sandbox.provider import SandboxProvider
from worker.sandbox.server import serve


__all__ = ["SandboxProvider", "serve"]
