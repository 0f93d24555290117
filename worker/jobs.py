"""``send_sms``: the only callable an smsq worker runs (its path is part of the wire contract)."""

from __future__ import annotations

import structlog

from producers.errors import RefusedJobError
from producers.keys import MESSAGE_ID_PATTERN
from worker.logs import bind_message
from worker.send import runtime
from worker.send.crashpoints import crash_point


def send_sms(message_id: str) -> str:
    """Send the message ``message_id`` at most once and return its state.

    Raises:
        RefusedJobError: the argument is not a message id (the job was not written by smsq).
    """
    if not isinstance(message_id, str) or not MESSAGE_ID_PATTERN.fullmatch(message_id):
        raise RefusedJobError("send_sms takes one message id (32 hex digits)")
    bind_message({"message_id": message_id})
    crash_point("after_start")
    try:
        return runtime.current().sender.send(message_id).state
    finally:
        structlog.contextvars.clear_contextvars()
