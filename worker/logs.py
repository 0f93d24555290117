"""Logging: structlog JSON lines (console on a TTY), with secrets and personal data scrubbed.

Configured once per process we own, before RQ exists, so RQ's and httpx's stdlib lines come out
through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from producers.phones import mask_phone


REDACTED = "[redacted]"
SECRET_FIELDS = frozenset(
    {
        "apikey",
        "api_key",
        "password",
        "authorization",
        "smsdata",
        "text",
        "message",
        "params",
        "request",
    }
)
"""Fields whose values are never logged, whatever their content."""
PHONE_PATTERN = re.compile(r"(?<![\w.:-])\+?\d{8,15}(?![\w.:-])")
"""Runs of 8-15 digits: international phone numbers as smsq writes them."""


class Redactor:
    """Processor: drops secret fields, masks phone numbers, erases known secret values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if len(s) >= 4)

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        return {key: self._clean(key, value) for key, value in event_dict.items()}

    def _clean(self, key: str, value: Any) -> Any:
        if key.lower() in SECRET_FIELDS:
            return REDACTED
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean("", v) for v in value]
        return value

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return PHONE_PATTERN.sub(lambda m: mask_phone(m.group(0).lstrip("+")), text)


def configure_logging(
    *, level: str = "INFO", fmt: str = "auto", secrets: Iterable[str] = (), stream: Any = None
) -> None:
    """Configure structlog and the stdlib root logger for this process.

    Args:
        level: minimum level name.
        fmt: ``json``, ``console``, or ``auto`` (console when the stream is a TTY).
        secrets: literal values (the apiKey) erased from every line, as a backstop.
        stream: where lines go (stderr by default).
    """
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    redactor = Redactor(secrets)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if console
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    exceptions: Processor = (
        # Plain text tracebacks: the console renderer's own formatter would show frame locals.
        structlog.processors.format_exc_info
        if console
        else structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
    )
    tail: list[Processor] = [exceptions, redactor]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_rq_extras],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO; the URL holds no secret, but it is noise per message.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _drop_rq_extras(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    """RQ attaches job args and kwargs as ``extra`` on failures; they never reach a log line."""
    # uvicorn adds a copy of its message with terminal colour codes.
    for key in ("arguments", "kwargs", "func", "args", "color_message"):
        event_dict.pop(key, None)
    return event_dict


def bind_message(fields: MutableMapping[str, Any]) -> None:
    """Start a job's log context: clear the previous job's, bind this one's identifiers."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**fields)
