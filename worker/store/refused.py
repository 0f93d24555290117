"""Dead letters for what never became a send: refused jobs and unreadable intake entries.

Every builder truncates what it copies from the outside (a job id, an intake entry) the same
way, so a hostile producer cannot make one dead letter arbitrarily large.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from producers import keys
from producers.errors import shown
from producers.records import utc_now_iso


if TYPE_CHECKING:
    from redis import Redis

DEAD_ID_MAX_CHARS = 120
JOB_ID_MAX_CHARS = 100
DETAIL_MAX_CHARS = 500
"""Longest excerpt of a refused intake entry kept for the operator."""


def record_dead_letter(
    connection: Redis, dead_id: str, fields: dict[str, str], *, ttl_s: int
) -> None:
    """Record a dead letter that is not a message (a refused job, an unreadable intake entry)."""
    data: dict[str, str] = {"dead_id": dead_id, "at": utc_now_iso(), **fields}
    pipe = connection.pipeline(transaction=True)
    pipe.hset(keys.dead_letter(dead_id), mapping=data)  # type: ignore[arg-type]
    pipe.expire(keys.dead_letter(dead_id), ttl_s)
    pipe.zadd(keys.DEAD_LETTERS, {dead_id: time.time()})
    pipe.hincrby(keys.METRICS, "dead_letters", 1)
    pipe.execute()


def refuse_job(
    connection: Redis,
    job_id: str,
    reason: str,
    *,
    ttl_s: int,
    lane: str | None = None,
    message_id: str | None = None,
) -> str:
    """Record a job smsq will not run (foreign, malformed, or its message is gone); returns
    the job id as shown (truncated)."""
    shown = job_id[:JOB_ID_MAX_CHARS]
    fields = {"kind": "job", "state": "refused", "job_id": shown, "reason": reason}
    if lane is not None:
        fields["lane"] = lane
    if message_id is not None:
        fields["message_id"] = message_id
    record_dead_letter(connection, f"job-{job_id}"[:DEAD_ID_MAX_CHARS], fields, ttl_s=ttl_s)
    return shown


def refuse_intake(
    connection: Redis,
    raw: bytes,
    reason: str,
    *,
    ttl_s: int,
    key: str | None = None,
    head: bytes | None = None,
    size_bytes: int | None = None,
) -> None:
    """Record an intake entry that did not become a message, with an excerpt of it.

    Args:
        raw: the entry as taken (its digest names the dead letter).
        head, size_bytes: for an entry taken only in part (over the size limit), the start
            that was read and the whole entry's size; by default ``raw`` and its size.
    """
    dead_id = "intake-" + hashlib.sha256(raw).hexdigest()[:24]
    fields = {
        "kind": "intake",
        "state": "refused",
        "reason": shown(reason, max_chars=2_000),
        "detail": (raw if head is None else head).decode("utf-8", "replace")[:DETAIL_MAX_CHARS],
        "size_bytes": str(len(raw) if size_bytes is None else size_bytes),
    }
    if key:
        fields["key"] = shown(key, max_chars=DEAD_ID_MAX_CHARS)
    record_dead_letter(connection, dead_id, fields, ttl_s=ttl_s)
