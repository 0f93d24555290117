"""smsq worker: turns queued send requests into AllMySMS sendSms calls (no import side effects)."""

from __future__ import annotations


__version__ = "0.1.0"
