"""Taking jobs from the lanes: several at once, in priority order, never losing one.

One Lua call (``worker/store/lua/lanes_take.lua``) moves up to ``count`` job ids from the lanes
(urgent first, paused lanes skipped) into each lane's intermediate list and returns what the
worker needs to run them: the job's data and whether it carries callbacks or webhooks. A job
stays in the intermediate list until its send is recorded, so a worker that dies at any point
leaves a trace the reconciler finds.

A job written by smsq (``send_sms(<message id>)`` under id ``smsq-<message id>[-r<n>]``, no
callbacks) runs without loading it into an RQ ``Job``: that saves RQ's per-job bookkeeping
(about 25 Redis round trips). Anything else goes through RQ's own loader and smsq's refusal
checks, unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from producers import keys
from producers.contract import SEND_SMS_JOB
from producers.store import decoded
from worker.store import lua


if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script


@dataclass(frozen=True, slots=True)
class Taken:
    """A job moved into its lane's intermediate list by this worker."""

    queue_key: str
    job_id: str
    message_id: str | None
    """Set when the job is a plain smsq send job; None sends it to RQ's loader and checks."""

    @property
    def intermediate_key(self) -> str:
        return f"{self.queue_key}:intermediate"


class Lanes:
    """The lanes one worker drains, in priority order."""

    def __init__(self, connection: Redis, queue_keys: list[str], lanes: list[str]) -> None:
        self._redis = connection
        self._queue_keys = queue_keys
        self._lanes = lanes
        self._script: Script = connection.register_script(lua.load("lanes_take"))
        self._done: Script = connection.register_script(lua.load("lanes_done"))

    def take(self, count: int) -> list[Taken]:
        """Move up to ``count`` jobs into their intermediate lists; [] when none or paused."""
        rows = self._script(keys=self._queue_keys, args=[keys.PAUSED, count, *self._lanes])
        taken = []
        for index, raw_id, data, plain in rows:
            job_id = decoded(raw_id, "replace")
            queue_key = self._queue_keys[int(index) - 1]
            taken.append(
                Taken(queue_key, job_id, plain_message_id(job_id, data) if int(plain) else None)
            )
        return taken

    def done(self, taken: Taken) -> bool:
        """The job's send is over: drop it from the intermediate list and delete it (smsq
        keeps no RQ result; its outcome store is the record). Unless its message is still
        ``queued`` with this job as its own (the send's answer came from a demoted primary):
        then the job goes back to its lane, and False is returned."""
        mid = taken.message_id or keys.message_id_of_job(taken.job_id) or ""
        dropped = self._done(
            keys=[
                taken.intermediate_key,
                keys.rq_job(taken.job_id),
                taken.queue_key,
                keys.message(mid),
                keys.LATER,
            ],
            args=[taken.job_id, mid],
        )
        return bool(dropped)


def plain_message_id(job_id: str, data: bytes | str) -> str | None:
    """The message id of a job exactly as smsq writes it, else None."""
    match = keys.JOB_ID_PATTERN.fullmatch(job_id)
    if match is None or not data:
        return None
    try:
        decoded = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if decoded != [SEND_SMS_JOB, None, [match.group(1)], {}]:
        return None
    return match.group(1)
