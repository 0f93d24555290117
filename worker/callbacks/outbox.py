"""Callbacks to producers: the events and the Redis outbox they wait in (their signature is
:mod:`producers.callbacks`).

An event is added to the outbox by the same Lua script that makes the change it reports (a
message reaching a final state in :mod:`worker.store.ledger`, a delivery receipt or a reply
in :mod:`worker.store.receipts`), so it can never be lost between the change and the outbox, and
costs no extra round trip. :mod:`worker.callbacks.dispatcher` delivers it, at least once.

The outbox is one sorted set of event ids scored by when each may next be attempted. Taking an
event leases it (its score moves to the delivery's deadline): a dispatcher killed mid-delivery
leaves the event due again once the lease runs out, so nothing is lost, and receivers dedupe by
``event_id`` (also the ``webhook-id`` header, see :mod:`producers.callbacks`). The outbox
scripts are ``worker/store/lua/outbox_*.lua``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.store import decoded
from worker.store import lua


if TYPE_CHECKING:
    from redis import Redis

JSON_TEXT_FIELDS = {"sms_ids": "{}", "invalid_numbers": "[]"}
"""Event fields the Lua scripts store as JSON text, with their empty value."""


def decode_event(stored: dict[str, Any]) -> dict[str, Any]:
    """The event as POSTed, from its stored form (JSON-text fields decoded)."""
    event = dict(stored)
    for name, empty in JSON_TEXT_FIELDS.items():
        if isinstance(event.get(name), str):
            event[name] = json.loads(event[name] or empty)
    return event


def event_body(event: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed, :mod:`producers.callbacks`): compact, sorted JSON, the
    same on every attempt."""
    return json.dumps(event, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode(
        "utf-8"
    )


@dataclass(frozen=True, slots=True)
class Pending:
    """One event taken from the outbox, leased to this dispatcher until it reports back."""

    event_id: str
    url: str
    producer: str
    event: dict[str, Any]
    created: float
    """When the event was added (Redis server clock, epoch seconds)."""
    attempt: int
    """This attempt's number, from 1 (a crashed attempt counts)."""
    now: float
    """The Redis server clock when it was taken."""


@dataclass(frozen=True, slots=True)
class DeadCallback:
    """A callback given up on: kept for operators (``smsq callbacks --dead``), sent again by
    ``smsq callbacks --requeue`` (:mod:`worker.callbacks.requeue`)."""

    event_id: str
    url: str
    event: dict[str, Any]
    reason: str
    attempts: int
    at: float
    http_status: int | None
    producer: str = ""
    """The producer account (login) of the request; "" when it named none."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "url": self.url,
            "producer": self.producer,
            "event": self.event,
            "reason": self.reason,
            "attempts": self.attempts,
            "at": self.at,
            "http_status": self.http_status,
        }


class Outbox:
    """The dispatcher's side of the outbox: take (lease), then report delivered, retry or dead."""

    def __init__(self, connection: Redis, *, lease_s: float, keep_dead_s: int) -> None:
        self._redis = connection
        self._lease_s = lease_s
        self._keep_dead_s = keep_dead_s
        self._take = connection.register_script(lua.load("outbox_take"))
        self._delivered = connection.register_script(lua.load("outbox_delivered"))
        self._retry = connection.register_script(lua.load("outbox_retry"))
        self._dead = connection.register_script(lua.load("outbox_dead"))

    def take(self) -> Pending | None:
        """The next due event, leased for ``lease_s``; None when nothing is due."""
        raw = self._take(
            keys=[keys.CALLBACK_DUE, keys.CALLBACK_EVENTS, keys.CALLBACK_ATTEMPTS],
            args=[self._lease_s],
        )
        if not raw:
            return None
        envelope = json.loads(decoded(raw[1]))
        return Pending(
            event_id=decoded(raw[0]),
            url=envelope["url"],
            producer=envelope.get("producer") or "",
            event=decode_event(envelope["event"]),
            created=float(envelope["created"]),
            attempt=int(raw[2]),
            now=float(decoded(raw[3])),
        )

    def delivered(self, event_id: str) -> None:
        self._delivered(
            keys=[keys.CALLBACK_DUE, keys.CALLBACK_EVENTS, keys.CALLBACK_ATTEMPTS, keys.METRICS],
            args=[event_id],
        )

    def retry(self, event_id: str, wait_s: float) -> None:
        self._retry(keys=[keys.CALLBACK_DUE, keys.METRICS], args=[event_id, wait_s])

    def dead(
        self, event_id: str, *, reason: str, attempts: int, http_status: int | None = None
    ) -> None:
        """Give up on the event: it is kept, with ``reason``, in a hash of its own that expires
        after ``keep_dead_s`` (nothing is kept when its envelope was erased meanwhile)."""
        info = {"reason": reason, "attempts": attempts, "http_status": http_status}
        self._dead(
            keys=[
                keys.CALLBACK_DUE,
                keys.CALLBACK_DEAD,
                keys.dead_callback(event_id),
                keys.CALLBACK_DEAD_REASONS,
                keys.CALLBACK_EVENTS,
                keys.CALLBACK_ATTEMPTS,
                keys.METRICS,
            ],
            args=[event_id, json.dumps(info), self._keep_dead_s],
        )

    def wait_for_work(self, timeout_s: float) -> None:
        """Block until an event is added (a wake token) or ``timeout_s`` passes."""
        self._redis.blpop([keys.CALLBACK_WAKE], timeout=timeout_s)


def dead_callbacks(connection: Redis, *, limit: int = 100) -> list[DeadCallback]:
    """Dead callbacks, newest first (those of earlier versions, whose envelope stayed in the
    events hash, too)."""
    raw_ids: list[bytes | str] = connection.zrevrange(  # type: ignore[assignment]
        keys.CALLBACK_DEAD, 0, limit - 1
    )
    ids = [decoded(i) for i in raw_ids]
    if not ids:
        return []
    pipe = connection.pipeline(transaction=False)
    for event_id in ids:
        pipe.hmget(keys.dead_callback(event_id), ["envelope", "reason"])
    pipe.hmget(keys.CALLBACK_EVENTS, ids)
    pipe.hmget(keys.CALLBACK_DEAD_REASONS, ids)
    *own, legacy_envelopes, legacy_reasons = pipe.execute()
    out: list[DeadCallback] = []
    for event_id, (raw_envelope, raw_reason), old_envelope, old_reason in zip(
        ids, own, legacy_envelopes, legacy_reasons, strict=True
    ):
        raw_envelope, raw_reason = raw_envelope or old_envelope, raw_reason or old_reason
        if raw_envelope is None or raw_reason is None:
            continue  # expired or erased
        envelope = json.loads(decoded(raw_envelope))
        info = json.loads(decoded(raw_reason))
        out.append(
            DeadCallback(
                event_id=event_id,
                url=envelope["url"],
                event=decode_event(envelope["event"]),
                reason=info["reason"],
                attempts=int(info["attempts"]),
                at=float(info["at"]),
                http_status=info.get("http_status"),
                producer=envelope.get("producer") or "",
            )
        )
    return out
