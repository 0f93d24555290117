"""Wire contract v1: the JSON send request any backend can produce, and its validation."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from producers import keys
from producers.errors import InvalidRequestError, PhoneError
from producers.marketing import DEFAULT_STOP_RULE, Purpose, StopRule, parse_purpose
from producers.phones import normalise_phone
from producers.segments import SegmentCount, count_segments
from producers.transliterate import Transliteration, parse_transliteration, transliterate


SEND_SMS_JOB = "worker.jobs.send_sms"
"""The only callable a worker runs; stored in every job, so it is a long-lived contract."""
EVENT_FINAL = "message.final"
"""Callback event: a message reached a final state."""
EVENT_RECEIPT = "message.receipt"
"""Callback event: a delivery receipt for one recipient."""
EVENT_REPLY = "message.reply"
"""Callback event: a recipient replied."""

KEY_MAX_CHARS = 200
MAX_RECIPIENTS = 10_000
TEXT_MAX_CHARS = 640
"""AllMySMS refuses longer messages with status 111."""
CAMPAIGN_MAX_CHARS = 100
VALID_FOR_MAX_S = 30 * 24 * 3600
SENDER_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]{2,10}")
"""TPOA: 3-11 letters and digits, starting with a letter."""
PHONE_LIKE_PATTERN = re.compile(r"\+?[0-9][0-9 .-]{3,}")
"""A sender made of digits (and separators): a phone number or a short code."""
PLACEHOLDER_PATTERN = re.compile(r"#param_([0-9]+)#")
CALLBACK_URL_MAX_CHARS = 2000
PRODUCER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A producer account name (``SMSQ_PRODUCERS`` login): whose secret signs the callbacks."""
FIELDS = frozenset(
    {
        "key",
        "to",
        "text",
        "sender",
        "send_at",
        "campaign",
        "lane",
        "valid_for_s",
        "callback_url",
        "producer",
        "purpose",
        "transliterate",
        "test",
    }
)


class Lane(StrEnum):
    """Priority lanes, one RQ queue each; workers drain them in this order."""

    URGENT = "urgent"
    DEFAULT = "default"
    BULK = "bulk"


LANE_ORDER = (Lane.URGENT, Lane.DEFAULT, Lane.BULK)


def queue_name(lane: Lane) -> str:
    """RQ queue name of a lane (``smsq-urgent``)."""
    return f"{keys.LANE_QUEUE_PREFIX}{lane.value}"


@dataclass(frozen=True, slots=True)
class Recipient:
    phone: str
    """International digits without ``+``."""
    params: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RefusedNumber:
    """A recipient dropped before any provider call."""

    field: str
    """Where it was in the request: ``to[3]``."""
    phone: str
    """As the producer wrote it."""
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SendRequest:
    """A validated, normalised send request."""

    key: str
    recipients: tuple[Recipient, ...]
    text: str
    sender: str | None = None
    send_at: datetime | None = None
    campaign: str | None = None
    lane: Lane = Lane.DEFAULT
    valid_for_s: float | None = None
    refused_numbers: tuple[RefusedNumber, ...] = ()
    dynamic: int = 0
    """Highest ``#param_N#`` used in ``text``; each recipient carries that many params."""
    segments: int = field(default=1)
    """SMS parts per recipient (the longest after substitution)."""
    encoding: str = "gsm7"
    callback_url: str | None = None
    """Where smsq POSTs signed events about this message (final state, each receipt)."""
    producer: str | None = None
    """The producer account that sent the request; its secret signs the callbacks."""
    purpose: Purpose = Purpose.TRANSACTIONAL
    """``marketing`` messages get the STOP mention at enqueue and wait for the sending hours."""
    segments_as_written: int | None = None
    """Parts per recipient before transliteration, when it changed the count (not stored)."""
    test: bool = False
    """Test mode: a worker records it ``sent`` without posting anything to AllMySMS."""

    def to_stored(self) -> dict[str, Any]:
        """The JSON form kept in the outcome store and read back by the worker."""
        stored: dict[str, Any] = {
            "key": self.key,
            "to": [{"phone": r.phone, "params": list(r.params)} for r in self.recipients],
            "text": self.text,
            "sender": self.sender,
            "send_at": self.send_at.isoformat() if self.send_at else None,
            "campaign": self.campaign,
            "lane": self.lane.value,
            "valid_for_s": self.valid_for_s,
            "dynamic": self.dynamic,
            "segments": self.segments,
            "encoding": self.encoding,
            "callback_url": self.callback_url,
            "producer": self.producer,
        }
        if self.purpose is not Purpose.TRANSACTIONAL:
            stored["purpose"] = self.purpose.value
        if self.test:
            stored["test"] = True
        return stored

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> SendRequest:
        """Rebuild a request written by :meth:`to_stored` (already validated)."""
        send_at = data.get("send_at")
        recipients = tuple(Recipient(r["phone"], tuple(r["params"])) for r in data["to"])
        segments, encoding = data.get("segments"), data.get("encoding")
        if segments is None or encoding is None:  # stored before 0.2: count them again
            counts = [count_segments(_substitute(data["text"], r.params)) for r in recipients]
            segments = max(c.segments for c in counts)
            encoding = "ucs2" if any(c.encoding == "ucs2" for c in counts) else "gsm7"
        return cls(
            key=data["key"],
            recipients=recipients,
            text=data["text"],
            segments=int(segments),
            encoding=str(encoding),
            sender=data.get("sender"),
            send_at=datetime.fromisoformat(send_at) if send_at else None,
            campaign=data.get("campaign"),
            lane=Lane(data.get("lane", "default")),
            valid_for_s=data.get("valid_for_s"),
            dynamic=int(data.get("dynamic", 0)),
            callback_url=data.get("callback_url"),
            producer=data.get("producer"),
            purpose=Purpose(data.get("purpose") or Purpose.TRANSACTIONAL.value),
            test=data.get("test") is True,
        )


def parse_request(
    obj: object,
    *,
    default_region: str = "FR",
    stop: StopRule = DEFAULT_STOP_RULE,
    transliteration: Transliteration = Transliteration.NONE,
) -> SendRequest:
    """Validate a decoded JSON send request and normalise it.

    Recipients with an invalid number are dropped and listed in ``refused_numbers``; the request
    is refused only when none is left. A ``marketing`` text with a custom sender gets the STOP
    mention of ``stop`` (or is refused without it, by its policy) before its length and
    segments are counted. ``transliteration`` (or the request's ``transliterate``) replaces
    characters that force UCS-2 in the text and the params (:mod:`producers.transliterate`).

    Raises:
        InvalidRequestError: names the first field that breaks the contract and why.
    """
    if not isinstance(obj, Mapping):
        raise InvalidRequestError("request", "must be a JSON object")
    unknown = sorted(set(obj) - FIELDS)
    if unknown:
        raise InvalidRequestError(str(unknown[0]), "unknown field")
    key = _key(obj.get("key"))
    text = _text(obj.get("text"))
    sender = _sender(obj.get("sender"))
    purpose = parse_purpose(obj.get("purpose"))
    if purpose is Purpose.MARKETING:
        text = stop.apply(text, sender=sender, max_chars=TEXT_MAX_CHARS)
    level = parse_transliteration(obj.get("transliterate"), transliteration)
    written = text
    text = transliterate(text, level)
    placeholders = [int(n) for n in PLACEHOLDER_PATTERN.findall(text)]
    if any(n == 0 for n in placeholders):
        raise InvalidRequestError("text", "placeholders are numbered from #param_1#")
    dynamic = max(placeholders, default=0)
    recipients, refused = _recipients(obj.get("to"), default_region, dynamic)
    as_written: int | None = None
    if level is not Transliteration.NONE:  # counted twice only when it may change the count
        as_written = _longest(written, recipients).segments
        recipients = tuple(
            Recipient(r.phone, tuple(transliterate(p, level) for p in r.params)) for r in recipients
        )
    counts = [count_segments(_substitute(text, r.params)) for r in recipients]
    longest = max(counts, key=lambda c: (c.segments, c.encoding == "ucs2"))
    return SendRequest(
        key=key,
        recipients=recipients,
        text=text,
        sender=sender,
        send_at=_send_at(obj.get("send_at")),
        campaign=_optional_text(obj.get("campaign"), "campaign", CAMPAIGN_MAX_CHARS),
        lane=_lane(obj.get("lane")),
        valid_for_s=_valid_for(obj.get("valid_for_s")),
        refused_numbers=refused,
        dynamic=dynamic,
        segments=longest.segments,
        encoding="ucs2" if any(c.encoding == "ucs2" for c in counts) else "gsm7",
        callback_url=_callback_url(obj.get("callback_url")),
        producer=_producer(obj.get("producer")),
        purpose=purpose,
        segments_as_written=as_written if as_written != longest.segments else None,
        test=_test(obj.get("test")),
    )


SOURCE_GATEWAY = "gateway"
SOURCE_INTAKE = "intake"
"""Where a request came from (``source`` in its record): the gateway authenticates its
producers by api key; an intake entry comes from whoever may RPUSH the list."""


def check_source(request: SendRequest, source: str) -> None:
    """Refuse what only the gateway may claim: the ``gw:`` key namespace, and a ``producer``
    account, whose secret would sign the callbacks.

    Raises:
        InvalidRequestError: names ``key`` or ``producer``.
    """
    if source == SOURCE_GATEWAY:
        return
    if request.key.startswith(keys.GATEWAY_KEY_PREFIX):
        raise InvalidRequestError(
            "key", f"keys starting with {keys.GATEWAY_KEY_PREFIX} belong to gateway producers"
        )
    if request.producer is not None:
        where = (
            "an intake entry" if source == SOURCE_INTAKE else "a request from outside the gateway"
        )
        raise InvalidRequestError(
            "producer",
            f"{where} cannot name a producer account (the gateway sets it from the login it "
            "authenticated)",
        )


def _longest(text: str, recipients: tuple[Recipient, ...]) -> SegmentCount:
    counts = [count_segments(_substitute(text, r.params)) for r in recipients]
    return max(counts, key=lambda c: (c.segments, c.encoding == "ucs2"))


def _substitute(text: str, params: tuple[str, ...]) -> str:
    if not params:
        return text
    return PLACEHOLDER_PATTERN.sub(lambda m: params[int(m.group(1)) - 1], text)


def _key(value: object) -> str:
    if value is None:
        raise InvalidRequestError("key", "is required")
    if not isinstance(value, str):
        raise InvalidRequestError("key", "must be a string")
    if not 1 <= len(value) <= KEY_MAX_CHARS:
        raise InvalidRequestError("key", f"must be 1 to {KEY_MAX_CHARS} characters")
    return _unicode(value, "key")


def _unicode(value: str, field: str) -> str:
    """``value`` if it is valid Unicode (JSON's ``\\ud800`` escape decodes to a lone surrogate,
    which no UTF-8 encoder, Redis client or SMS can carry)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidRequestError(
            field,
            f"holds a lone surrogate (U+{ord(value[error.start]):04X} at character "
            f"{error.start + 1}); send valid Unicode",
        ) from None
    return value


def _text(value: object) -> str:
    if value is None:
        raise InvalidRequestError("text", "is required")
    if not isinstance(value, str):
        raise InvalidRequestError("text", "must be a string")
    if not value.strip():
        raise InvalidRequestError("text", "must not be empty")
    if len(value) > TEXT_MAX_CHARS:
        raise InvalidRequestError(
            "text", f"is {len(value)} characters; AllMySMS accepts at most {TEXT_MAX_CHARS}"
        )
    return _unicode(value, "text")


def _recipients(
    value: object, default_region: str, dynamic: int
) -> tuple[tuple[Recipient, ...], tuple[RefusedNumber, ...]]:
    if value is None:
        raise InvalidRequestError("to", "is required")
    items: list[object] = [value] if isinstance(value, str | Mapping) else value  # type: ignore[assignment]
    if not isinstance(items, list):
        raise InvalidRequestError("to", "must be a list of phone numbers or recipient objects")
    if not 1 <= len(items) <= MAX_RECIPIENTS:
        raise InvalidRequestError("to", f"must hold 1 to {MAX_RECIPIENTS} recipients")
    recipients: dict[str, Recipient] = {}
    refused: list[RefusedNumber] = []
    for index, item in enumerate(items):
        where = f"to[{index}]"
        raw, params = _recipient(item, where)
        if len(params) < dynamic:
            raise InvalidRequestError(
                f"{where}.params", f"text uses #param_{dynamic}# but only {len(params)} given"
            )
        try:
            phone = normalise_phone(raw, default_region)
        except PhoneError as exc:
            refused.append(RefusedNumber(where, raw, exc.reason))
            continue
        recipients.setdefault(phone, Recipient(phone, params[:dynamic]))
    if not recipients:
        detail = "; ".join(f"{r.field}: {r.reason}" for r in refused[:5])
        raise InvalidRequestError("to", f"no valid recipient ({detail})")
    return tuple(recipients.values()), tuple(refused)


def _recipient(item: object, where: str) -> tuple[str, tuple[str, ...]]:
    if isinstance(item, str):
        return _unicode(item, where), ()
    if not isinstance(item, Mapping):
        raise InvalidRequestError(where, 'must be a phone string or {"phone", "params"}')
    extra = sorted(set(item) - {"phone", "params"})
    if extra:
        raise InvalidRequestError(f"{where}.{extra[0]}", "unknown field")
    phone = item.get("phone")
    if not isinstance(phone, str):
        raise InvalidRequestError(f"{where}.phone", "is required and must be a string")
    params = item.get("params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise InvalidRequestError(f"{where}.params", "must be a list of strings")
    for index, param in enumerate(params):
        _unicode(param, f"{where}.params[{index}]")
    return _unicode(phone, f"{where}.phone"), tuple(params)


def _sender(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and PHONE_LIKE_PATTERN.fullmatch(value):
        raise InvalidRequestError(
            "sender",
            "must not be a phone number or short code (ARCEP decision 2022-1583 forbids phone "
            "numbers as the sender of automated messages; omit it to send from 36180): use 3 "
            "to 11 letters and digits, starting with a letter",
        )
    if not isinstance(value, str) or not SENDER_PATTERN.fullmatch(value):
        raise InvalidRequestError(
            "sender", "must be 3 to 11 letters and digits, starting with a letter"
        )
    return value


def _send_at(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError("send_at", "must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError("send_at", "is not an ISO-8601 date-time") from None
    if moment.tzinfo is None:
        raise InvalidRequestError("send_at", "must carry a UTC offset (e.g. +01:00 or Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidRequestError(
            "send_at", "is outside the dates that can be written in UTC (years 1 to 9999)"
        ) from None


def _optional_text(value: object, name: str, max_chars: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= max_chars:
        raise InvalidRequestError(name, f"must be a string of 1 to {max_chars} characters")
    return _unicode(value, name)


def _lane(value: object) -> Lane:
    if value is None:
        return Lane.DEFAULT
    try:
        return Lane(str(value)) if isinstance(value, str) else Lane("")
    except ValueError:
        names = " | ".join(lane.value for lane in LANE_ORDER)
        raise InvalidRequestError("lane", f"must be one of {names}") from None


def _valid_for(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError("valid_for_s", "must be a number of seconds")
    if not 0 < value <= VALID_FOR_MAX_S:
        raise InvalidRequestError("valid_for_s", f"must be between 0 and {VALID_FOR_MAX_S}")
    return float(value)


def _callback_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= CALLBACK_URL_MAX_CHARS:
        raise InvalidRequestError(
            "callback_url", f"must be a string of 1 to {CALLBACK_URL_MAX_CHARS} characters"
        )
    _unicode(value, "callback_url")
    try:
        parts = urlsplit(value)
        hostname, _ = parts.hostname, parts.port
    except ValueError as error:
        raise InvalidRequestError("callback_url", f"is not a URL ({error})") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise InvalidRequestError("callback_url", "must be an absolute http(s) URL")
    return value


def _test(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequestError("test", "must be true or false")
    return value


def _producer(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not PRODUCER_PATTERN.fullmatch(value):
        raise InvalidRequestError(
            "producer",
            "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return value
