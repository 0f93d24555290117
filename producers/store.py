"""Read side of the outcome store: message records, their history, and dead letters."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.parts import combine
from producers.records import DeadLetter, MessageRecord
from producers.redis_errors import translate_redis_errors


if TYPE_CHECKING:
    from redis import Redis


class MessageStore:
    """Reads what workers wrote; producers and operators use it, never the worker's internals."""

    def __init__(self, connection: Redis) -> None:
        self._redis = connection

    def get(self, key: str) -> MessageRecord | None:
        """The record of the message whose idempotency key is ``key``, or None."""
        return self.get_by_id(keys.message_id(key))

    def get_by_id(self, message_id: str) -> MessageRecord | None:
        return self.get_many_by_id([message_id])[0]

    def replies(self, key: str) -> list[dict[str, Any]]:
        """Replies (MO SMS) to the message ``key`` (and its parts), oldest first."""
        record = self.get(key)
        return record.replies if record is not None else []

    def get_many_by_id(self, message_ids: list[str | None]) -> list[MessageRecord | None]:
        """Records for many message ids in one round trip (None where there is none); a split
        message comes back combined with its parts (one more round trip for all of them)."""
        records = self._fetch(message_ids)
        parents = [r for r in records if r is not None and r.part_ids]
        if not parents:
            return records
        parts = iter(self._fetch([mid for r in parents for mid in r.part_ids]))
        combined = {}
        for parent in parents:
            own = [next(parts) for _ in parent.part_ids]
            combined[parent.message_id] = _with_parts_receipts(combine(parent, own), own)
        return [combined.get(r.message_id, r) if r is not None else None for r in records]

    def _fetch(self, message_ids: list[str | None]) -> list[MessageRecord | None]:
        with translate_redis_errors(self._redis):
            pipe = self._redis.pipeline(transaction=False)
            for mid in message_ids:
                pipe.hgetall(keys.message(mid or "-"))
                pipe.lrange(keys.history(mid or "-"), 0, -1)
                pipe.hgetall(keys.receipts(mid or "-"))
                pipe.hgetall(keys.replies(mid or "-"))
            raw = pipe.execute()
        return [
            MessageRecord.from_redis(
                decoded_hash(raw[i * 4]),
                [decoded(h) for h in raw[i * 4 + 1]],
                receipts=decoded_hash(raw[i * 4 + 2]),
                replies=decoded_hash(raw[i * 4 + 3]),
            )
            if mid and raw[i * 4]
            else None
            for i, mid in enumerate(message_ids)
        ]

    def dead_letters(self, *, limit: int = 100, ttl_s: int | None = None) -> list[DeadLetter]:
        """Newest dead letters first; entries older than ``ttl_s`` are pruned on the way."""
        with translate_redis_errors(self._redis):
            if ttl_s is not None:
                self._redis.zremrangebyscore(keys.DEAD_LETTERS, "-inf", time.time() - ttl_s)
            ids = self._redis.zrevrange(keys.DEAD_LETTERS, 0, limit - 1)
            pipe = self._redis.pipeline(transaction=False)
            for dead_id in ids:
                pipe.hgetall(keys.dead_letter(decoded(dead_id)))  # type: ignore[arg-type]
            rows = pipe.execute()
        return [DeadLetter.from_redis(decoded_hash(row)) for row in rows if row]


def _with_parts_receipts(record: MessageRecord, parts: list[MessageRecord | None]) -> MessageRecord:
    """A split message's record with its parts' receipts and replies folded in."""
    present = [p for p in parts if p is not None]
    receipts = {phone: r for p in present for phone, r in p.receipts.items()}
    replies = sorted(
        (r for p in present for r in p.replies),
        key=lambda r: (r.get("received_at", ""), r.get("sms_mo_id", "")),
    )
    return replace(record, receipts=receipts, replies=replies)


def decoded(value: bytes | str, errors: str = "strict") -> str:
    """A Redis reply as text (replies are bytes unless the client decodes responses)."""
    return value.decode("utf-8", errors) if isinstance(value, bytes) else value


def decoded_hash(
    raw: Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str],
) -> dict[str, str]:
    """An ``HGETALL`` reply as a dict of text."""
    return {decoded(k): decoded(v) for k, v in raw.items()}
