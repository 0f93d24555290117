"""Every exception smsq raises on purpose.

::

    SmsqError
     ├── ConfigError             a setting is missing or invalid; the process stops at start-up
     ├── InvalidInputError       input breaks a rule; names the field and the reason
     │    ├── InvalidRequestError   a send request breaks the wire contract
     │    ├── WebhookParamError     a delivery-receipt or reply webhook parameter is invalid
     │    └── BadFilterError        an operator's dead-letter filter no dead letter could match
     ├── PhoneError              a phone number that cannot receive an SMS (says why)
     ├── FluxError               a flux the AllMySMS API refuses with a status (105-115)
     ├── RedisUnavailableError   Redis could not be reached; nothing was written
     │    └── NotReplicatedError    written, but too few replicas confirmed it: retry (same key)
     ├── ProviderError           talking to AllMySMS went wrong
     │    ├── NotSentError          it provably never reached AllMySMS (the only retried error)
     │    │    └── ProviderBusyError   HTTP 429, or 503 with Retry-After: refused unprocessed
     │    ├── MisdirectedError      the answer proves sendSms was never reached (wrong URL)
     │    ├── ProviderRefusedError  AllMySMS answered an operation (deleteCampaign) with a no
     │    └── OutcomeUnknownError   it may have reached AllMySMS: never resent automatically
     ├── RefusedJobError         a job in Redis names a callable or data smsq does not run
     ├── CallbackRefusedError    a callback_url the outbound policy refuses: dead, never retried
     ├── RateLimitBacklogError   no rate-limit turn within the wait budget (worker.send)
     ├── LuaScriptError          a Lua script, fragment or placeholder is wrong (worker.store.lua)
     ├── UnsafeValueError        a value that cannot be inlined into Lua (worker.store.lua)
     └── CallbackVerificationError  a receiver refuses a callback POST (producers.callbacks)
          ├── CallbackHeaderError      a webhook-* header is missing or malformed
          ├── CallbackTimestampError   signed too long ago (a replay) or too far ahead
          └── CallbackSignatureError   no signature matches the body, id, timestamp and secret

Messages never carry a phone number, a message text or the provider apiKey. AllMySMS's business
statuses 102-118 are answers, not exceptions: the sender records them as the message's state.
The errors that callers used to catch as ``ValueError`` still are ones.
"""

from __future__ import annotations


class SmsqError(Exception):
    """Base of every exception smsq raises on purpose."""


class ConfigError(SmsqError):
    """A setting is missing or invalid; ``variable`` names it, never its value."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


SHOWN_MAX_CHARS = 100
"""Longest piece of client input an error message repeats (an unknown field's name)."""


def shown(text: str, max_chars: int = SHOWN_MAX_CHARS) -> str:
    """``text`` safe to repeat in an error, a log line or Redis: lone surrogates (which no UTF-8
    encoder accepts) become ``\\udXXX`` escapes, and it is cut to ``max_chars``."""
    if len(text) > max_chars:
        text = text[:max_chars] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class InvalidInputError(SmsqError):
    """Input breaks a rule: ``field`` names where, ``reason`` says why.

    Both are made safe to encode (see :func:`shown`): they may quote what a client sent.
    """

    def __init__(self, field: str, reason: str) -> None:
        field, reason = shown(field), shown(reason, max_chars=2_000)
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class InvalidRequestError(InvalidInputError):
    """A send request breaks the wire contract."""


class WebhookParamError(InvalidInputError, ValueError):
    """A delivery-receipt or reply webhook parameter is missing or invalid."""


class BadFilterError(InvalidInputError, ValueError):
    """A dead-letter filter holds a value no dead letter could have."""


class PhoneError(SmsqError, ValueError):
    """A phone number that cannot receive an SMS; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FluxError(SmsqError):
    """A flux the AllMySMS API refuses with a business ``status`` (105-115)."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"status {status}: {detail}" if detail else f"status {status}")
        self.status = status
        self.detail = detail
        """What is wrong, naming the flux field (``MESSAGE: ...``); empty: the status says it."""


class RedisUnavailableError(SmsqError):
    """Redis could not be reached or answered with an error; nothing was written."""


class NotReplicatedError(RedisUnavailableError):
    """The primary took a write that backs an acknowledgment, but fewer replicas than
    ``SMSQ_REDIS_WAIT_REPLICAS`` confirmed it in time (the durability barrier): a failover now
    could lose it, so it is not acknowledged. Retrying with the same keys is safe."""

    def __init__(self, confirmed: int, required: int, timeout_ms: int, command: str) -> None:
        self.confirmed = confirmed
        self.required = required
        self.answer: object = None
        """What the write itself answered (a script's result), when known."""
        super().__init__(
            f"Redis took the write, but only {confirmed} of {required} replicas confirmed it "
            f"within {timeout_ms} ms ({command}, SMSQ_REDIS_WAIT_REPLICAS); it is not "
            "acknowledged: retrying with the same keys is safe, duplicates are ignored"
        )


class ProviderError(SmsqError):
    """Talking to AllMySMS went wrong."""


class NotSentError(ProviderError):
    """The request provably never reached AllMySMS (connect refused or timed out, pool full)."""


class ProviderBusyError(NotSentError):
    """AllMySMS refused the request without processing it: HTTP 429, or 503 with Retry-After.

    429 (RFC 6585 s. 4) is a request rejected for rate, answered by a rate limiter before the
    application runs. 503 (RFC 9110 s. 15.6.4) means "currently unable to handle the request",
    and a ``Retry-After`` makes it a deliberate "not now, come back": no SMS left, so sending it
    again cannot send twice. That is why this is a :class:`NotSentError` (retried, honouring
    ``retry_after_s``). A bare 503 is not trusted: proxies such as Envoy also answer 503 when the
    upstream connection breaks after the request was forwarded, so it stays
    :class:`OutcomeUnknownError` like 500, 502 and 504, and is never resent.
    """

    def __init__(self, http_status: int, retry_after_s: float | None = None) -> None:
        super().__init__(f"AllMySMS answered HTTP {http_status}: busy, nothing was sent")
        self.http_status = http_status
        self.retry_after_s = retry_after_s
        """The answer's ``Retry-After``, in seconds and capped, or None without one."""


class MisdirectedError(ProviderError):
    """The answer proves the request never reached sendSms: the URL is wrong (HTTP 404, 405,
    410 or 421 from whatever server is there) or the server's TLS certificate is not for that
    host. Nothing was sent; every later request would fail the same way, so the lanes pause
    until the setting is fixed."""

    def __init__(self, reason: str, *, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


class ProviderRefusedError(ProviderError):
    """AllMySMS answered a request other than sendSms (``deleteCampaign``) and said no:
    ``status`` and ``status_text`` are what it answered (the text cut short, never the apiKey:
    it is not in any answer)."""

    def __init__(self, endpoint: str, status: str, status_text: str = "") -> None:
        detail = f"status {status}" + (f" ({status_text})" if status_text else "")
        super().__init__(f"AllMySMS {endpoint} refused: {detail}")
        self.endpoint = endpoint
        self.status = status
        self.status_text = status_text


class OutcomeUnknownError(ProviderError):
    """The request may have reached AllMySMS; whether the SMS left is unknown."""

    def __init__(self, reason: str, *, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


class RefusedJobError(SmsqError):
    """A job in Redis that smsq refuses to run (foreign callable, bad data)."""


class CallbackRefusedError(SmsqError):
    """A callback destination refused by the outbound policy (``SMSQ_CALLBACK_ALLOWED_HOSTS``,
    ``SMSQ_CALLBACK_ALLOWED_NETWORKS``): asking again cannot change it, so the event goes dead.

    ``reason`` names the host, the address when one was refused, and the setting that would
    allow it; never the URL's path or query, which may carry the receiver's token.
    """

    def __init__(
        self, host: str, detail: str, *, variable: str, address: str | None = None
    ) -> None:
        self.host = host
        self.address = address
        self.variable = variable
        """The setting that would allow this destination."""
        self.reason = f'host "{host}" {detail}'
        super().__init__(f"callback_url {self.reason}")


class CallbackVerificationError(SmsqError):
    """A callback POST its receiver must refuse (:func:`producers.callbacks.verify_callback`);
    ``field`` names the header, ``reason`` says why. Never carries the secret or the body."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class CallbackHeaderError(CallbackVerificationError):
    """A ``webhook-id``, ``webhook-timestamp`` or ``webhook-signature`` header is missing or
    malformed."""


class CallbackTimestampError(CallbackVerificationError):
    """The signed timestamp is outside the receiver's tolerance: a replayed capture (or a clock
    far off)."""


class CallbackSignatureError(CallbackVerificationError):
    """No ``v1`` signature matches the body, event id and timestamp under the given secret(s)."""
