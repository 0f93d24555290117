"""Logging: JSON or console lines, scrubbed of secrets, phone numbers and message text."""

from __future__ import annotations

import io
import json
import logging

import structlog

from worker.logs import Redactor, configure_logging


def emit(fmt: str) -> str:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt=fmt, secrets=["sk-live-123456"], stream=stream)
    log = structlog.get_logger()
    log.info(
        "sms.send.accepted",
        key="k1",
        text="secret body",
        phone="33612345678",
        note="apiKey=sk-live-123456 to +33698765432",
    )
    logging.getLogger("rq.worker").info("job for 33611223344 done")
    try:
        raise ValueError("failed for 33612345678 with sk-live-123456")
    except ValueError:
        log.exception("sms.send.crashed")
    return stream.getvalue()


def test_json_lines_are_scrubbed() -> None:
    """JSON output masks phones, drops text, erases the apiKey, in structlog and stdlib lines."""
    out = emit("json")
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "sms.send.accepted"
    assert events[0]["text"] == "[redacted]"
    assert events[0]["phone"] == "3361*****78"
    assert events[0]["note"] == "apiKey=[redacted] to 3369*****32"
    assert events[1]["event"] == "job for 3361*****44 done"
    assert "exception" in events[2]
    for needle in ("sk-live-123456", "33612345678", "33698765432", "secret body"):
        assert needle not in out


def test_console_output_is_scrubbed_too() -> None:
    """The console renderer (used on a TTY) gets the same scrubbing, tracebacks included."""
    out = emit("console")
    assert "sms.send.accepted" in out
    assert "Traceback" in out
    for needle in ("sk-live-123456", "33612345678", "33698765432", "secret body"):
        assert needle not in out


def test_redactor_leaves_timestamps_and_ids_alone() -> None:
    """Digits inside timestamps, uuids or dotted names are not mistaken for phone numbers."""
    redactor = Redactor()
    event = {
        "event": "x",
        "at": "2026-11-25T12:00:00.123456Z",
        "job_id": "smsq-1234567890abcdef",
        "host": "vm.15625.0baad6",
    }
    assert redactor(None, "info", dict(event)) == event
