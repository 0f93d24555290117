"""Enqueue send requests: atomic Redis script calls (pipelined for big batches), idempotent by
key."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import redis.exceptions

from producers import keys
from producers.config import ProducerSettings
from producers.contract import (
    SEND_SMS_JOB,
    RefusedNumber,
    SendRequest,
    check_source,
    parse_request,
    queue_name,
)
from producers.durability import Barrier
from producers.errors import InvalidRequestError, PhoneError
from producers.marketing import Purpose
from producers.optouts import OPTED_OUT, OptOuts, Source
from producers.phones import normalise_phone
from producers.records import utc_now_iso
from producers.redis_errors import translate_redis_errors
from producers.states import State
from producers.store import decoded


if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script

JOB_DESCRIPTION = "smsq.send_sms"
"""Neutral RQ job description: RQ logs it, so it must hold no phone number or text."""

SCRIPT_RECIPIENTS = 200
"""A batch is written in script calls of about this many recipients, each call atomic. With
more than one, the calls are pipelined on one connection: Python builds call n+1 while Redis
runs call n, so a big batch keeps two cores busy instead of taking turns (1.7x the rate of one
call per batch, measured with 1,000 messages a batch)."""
SCRIPT_CALLS_IN_FLIGHT = 8
"""Pipelined calls sent before the oldest answer is read: bounds what waits in the sockets."""

# Each item: [msg_key, history_key, job_key, queue_key, job_id, record, history_json, job,
# parts?] (record and job are objects). A message whose record exists is a duplicate and
# returns its state; otherwise the record, its first history entry, the RQ job hash and the
# queue entry are written together. A split message has no job (job_id '') and carries its
# parts, items of the same shape, written with it.
_ENQUEUE_LUA = """
local items = cjson.decode(ARGV[1])
local ttl = tonumber(ARGV[2])
local out = {}
local pushed = 0
local queues = {}
local function hset_all(key, obj)
  local flat = {}
  for field, value in pairs(obj) do
    flat[#flat + 1] = field
    flat[#flat + 1] = value
  end
  redis.call('HSET', key, unpack(flat))
end
local function write(it)
  hset_all(it[1], it[6])
  redis.call('EXPIRE', it[1], ttl)
  redis.call('RPUSH', it[2], it[7])
  redis.call('EXPIRE', it[2], ttl)
  if it[5] ~= '' then
    hset_all(it[3], it[8])
    redis.call('RPUSH', it[4], it[5])
    queues[it[4]] = true
    pushed = pushed + 1
  end
end
local tomb_ttl = tonumber(ARGV[5])
for i, it in ipairs(items) do
  local state = redis.call('HGET', it[1], 'state')
  local tomb = ARGV[6] .. string.sub(it[1], tonumber(ARGV[7]))
  if not state and tomb_ttl > 0 then state = redis.call('GET', tomb) end
  if state then
    out[i] = state
  else
    write(it)
    if tomb_ttl > 0 then redis.call('SET', tomb, 'queued', 'EX', tomb_ttl) end
    if it[10] ~= '' then
      redis.call('ZADD', it[10], ARGV[8], it[6]['message_id'])
      redis.call('EXPIRE', it[10], ttl)
    end
    if it[9] then
      for _, part in ipairs(it[9]) do
        if redis.call('HEXISTS', part[1], 'state') == 0 then write(part) end
      end
    end
    out[i] = ''
  end
end
for queue in pairs(queues) do redis.call('SADD', 'rq:queues', queue) end
if pushed > 0 then
  for _ = 1, math.min(pushed, tonumber(ARGV[4])) do redis.call('LPUSH', ARGV[3], '1') end
  redis.call('LTRIM', ARGV[3], 0, tonumber(ARGV[4]) - 1)
end
return out
"""


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A request the store holds: new (``duplicate`` False) or already there under its key."""

    key: str
    message_id: str
    state: State
    duplicate: bool
    refused_numbers: tuple[dict[str, str], ...] = ()
    parts: int = 0
    """How many AllMySMS requests the message was split into (0: not split)."""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "state": self.state.value}
        if self.duplicate:
            data["duplicate"] = True
        if self.parts:
            data["parts"] = self.parts
        if self.refused_numbers:
            data["refused_numbers"] = list(self.refused_numbers)
        return data


@dataclass(frozen=True, slots=True)
class Refused:
    """A request refused at enqueue; nothing was written for it."""

    key: str | None
    error: InvalidRequestError

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "error": self.error.as_dict()}


class Producer:
    """Enqueues send requests into Redis for smsq workers."""

    def __init__(self, connection: Redis, settings: ProducerSettings | None = None) -> None:
        self._redis = connection
        self._settings = settings or ProducerSettings()
        self._script: Script = connection.register_script(_ENQUEUE_LUA)
        self._script_loaded = False
        """Whether this producer loaded the script for pipelined calls (see ``_pipelined``)."""
        self._barrier = Barrier.from_settings(self._settings)
        self._optouts = OptOuts(connection, key=self._settings.optout_key, barrier=self._barrier)

    @property
    def connection(self) -> Redis:
        return self._redis

    def enqueue(
        self, request: Mapping[str, Any] | SendRequest, *, source: str = "python"
    ) -> Enqueued:
        """Validate and enqueue one request; a known key returns the existing message.

        Raises:
            InvalidRequestError: the request breaks the contract; names the field.
            RedisUnavailableError: Redis could not be reached; retrying with the same key is
                safe. Its subclass NotReplicatedError: the durability barrier
                (``SMSQ_REDIS_WAIT_REPLICAS``) fell short, so the request is not acknowledged.
        """
        result = self.enqueue_many([request], source=source)[0]
        if isinstance(result, Refused):
            raise result.error
        return result

    def enqueue_many(
        self, requests: Iterable[Mapping[str, Any] | SendRequest], *, source: str = "python"
    ) -> list[Enqueued | Refused]:
        """Validate and enqueue a batch, answering in input order.

        ``source`` is recorded with each message; only ``"gateway"`` may use ``gw:`` keys or
        name a ``producer`` account (see :func:`check_source`).

        Up to about :data:`SCRIPT_RECIPIENTS` recipients go in one atomic script call (one
        round trip); a bigger batch is several calls, pipelined on one connection.

        Raises:
            RedisUnavailableError: Redis could not be reached; retrying with the same keys is safe.
                Its subclass NotReplicatedError: too few replicas confirmed the batch.
        """
        results: list[Enqueued | Refused | None] = []
        accepted: list[tuple[int, SendRequest]] = []
        for raw in requests:
            try:
                request = (
                    raw
                    if isinstance(raw, SendRequest)
                    else parse_request(
                        raw,
                        default_region=self._settings.default_country,
                        stop=self._settings.stop,
                        transliteration=self._settings.transliteration,
                    )
                )
                check_source(request, source)
            except InvalidRequestError as error:
                key = raw.key if isinstance(raw, SendRequest) else None
                key = raw.get("key") if isinstance(raw, Mapping) else key
                results.append(Refused(key if isinstance(key, str) else None, error))
                continue
            accepted.append((len(results), request))
            results.append(None)
        accepted = self._without_opted_out(accepted, results)
        if accepted:
            states = self._write([request for _, request in accepted], source)
            for (index, request), state in zip(accepted, states, strict=True):
                existing = decoded(state)
                results[index] = Enqueued(
                    key=request.key,
                    message_id=keys.message_id(request.key),
                    state=State(existing) if existing else State.QUEUED,
                    duplicate=bool(existing),
                    refused_numbers=tuple(_refused(request)),
                    parts=_parts(len(request.recipients), self._settings.chunk_recipients),
                )
        return [r for r in results if r is not None]

    def opt_out(self, phone: str, *, by: str = "", comment: str = "") -> bool:
        """Put a number on the suppression list (a person asked this producer to stop): no
        marketing message goes to it any more, even one already queued. False when it was
        already there. A producer can add a number, never remove one (an operator can).

        Raises:
            InvalidRequestError: ``phone`` is not a valid number.
        """
        normalised = _valid_phone(phone, self._settings.default_country)
        return self._optouts.add(normalised, source=Source.PRODUCER, by=by, comment=comment)

    def _without_opted_out(
        self,
        accepted: list[tuple[int, SendRequest]],
        results: list[Enqueued | Refused | None],
    ) -> list[tuple[int, SendRequest]]:
        """Drop opted-out recipients from the requests the suppression list applies to (one
        round trip for the batch); a request left with none is refused naming ``to``."""
        checked = [
            request
            for _, request in accepted
            if request.purpose is Purpose.MARKETING or self._settings.optout_transactional
        ]
        checked_ids = {id(request) for request in checked}
        if not checked:
            return accepted
        suppressed = self._optouts.suppressed(r.phone for req in checked for r in req.recipients)
        if not suppressed:
            return accepted
        kept: list[tuple[int, SendRequest]] = []
        for index, request in accepted:
            if id(request) not in checked_ids:
                kept.append((index, request))
                continue
            left = tuple(r for r in request.recipients if r.phone not in suppressed)
            if not left:
                results[index] = Refused(
                    request.key,
                    InvalidRequestError("to", f"no valid recipient (every one is {OPTED_OUT})"),
                )
                continue
            dropped = tuple(
                RefusedNumber("to", r.phone, OPTED_OUT)
                for r in request.recipients
                if r.phone in suppressed
            )
            kept.append(
                (
                    index,
                    replace(
                        request,
                        recipients=left,
                        refused_numbers=request.refused_numbers + dropped,
                    ),
                )
            )
        return kept

    def _write(self, requests: list[SendRequest], source: str) -> list[bytes | str]:
        """Run the enqueue script over ``requests``: the state each one already had, or ''."""
        calls = _script_calls(requests)
        if len(calls) == 1:
            return self._run_script(self._items(calls[0], source))
        with translate_redis_errors(self._redis, retry_hint=True):
            answers = self._pipelined(calls, source)
        states: list[bytes | str] = []
        for call, answer in zip(calls, answers, strict=True):
            # None: Redis had lost the script (restarted), so that call wrote nothing; the
            # plain call loads the script again.
            states.extend(
                answer if answer is not None else self._run_script(self._items(call, source))
            )
        return states

    def _pipelined(
        self, calls: list[list[SendRequest]], source: str
    ) -> list[list[bytes | str] | None]:
        """Send each call's script while earlier ones run, then collect the answers in order.

        A connection error mid-way drops the connection and raises: some calls may have been
        written, which a retry with the same keys finds (duplicates are ignored).
        """
        if not self._script_loaded:
            self._redis.script_load(_ENQUEUE_LUA)
            self._script_loaded = True
        pool = self._redis.connection_pool
        connection = pool.get_connection()
        answers: list[list[bytes | str] | None] = []
        confirmed: Any = None

        def read_one() -> None:
            try:
                answers.append(connection.read_response())
            except redis.exceptions.NoScriptError:
                answers.append(None)

        try:
            for sent, call in enumerate(calls, start=1):
                connection.send_command(  # type: ignore[no-untyped-call]
                    "EVALSHA", self._script.sha, 0, *self._script_args(self._items(call, source))
                )
                if sent - len(answers) > SCRIPT_CALLS_IN_FLIGHT:
                    read_one()
            while len(answers) < len(calls):
                read_one()
            if self._barrier.enabled:
                # After every call of the batch, on the same connection (see durability.py).
                connection.send_command("INCR", keys.BARRIER_TICK)  # type: ignore[no-untyped-call]
                connection.send_command(*self._barrier.wait_command())  # type: ignore[no-untyped-call]
                connection.read_response()
                try:
                    confirmed = connection.read_response()
                except redis.exceptions.ResponseError as exc:
                    raise self._barrier.unsupported(exc) from None
        except BaseException:
            connection.disconnect()  # type: ignore[no-untyped-call] # unread answers stay out
            raise
        finally:
            pool.release(connection)
        if self._barrier.enabled and None not in answers:
            # A call that met NOSCRIPT is run again by _write, with its own barrier.
            self._barrier.check(confirmed)
        return answers

    def _items(self, requests: list[SendRequest], source: str) -> list[list[Any]]:
        now = time.time()
        chunk = self._settings.chunk_recipients
        return [
            _item(request, now, source)
            if len(request.recipients) <= chunk
            else _split_item(request, now, source, chunk)
            for request in requests
        ]

    def _run_script(self, items: list[list[Any]]) -> list[bytes | str]:
        with translate_redis_errors(self._redis, retry_hint=True):
            states: list[bytes | str] = self._barrier.run_script(
                self._redis, self._script, args=self._script_args(items)
            )
        return states

    def _script_args(self, items: list[list[Any]]) -> list[Any]:
        return [
            json.dumps(items, ensure_ascii=False),
            self._settings.outcome_ttl_s,
            keys.WAKE,
            keys.WAKE_TOKENS_MAX,
            max(self._settings.key_memory_s, 0),
            keys.TOMBSTONE_PREFIX,
            len(keys.MESSAGE_PREFIX) + 1,
            repr(time.time()),
        ]


def _script_calls(requests: list[SendRequest]) -> list[list[SendRequest]]:
    """``requests`` in consecutive groups of about :data:`SCRIPT_RECIPIENTS` recipients."""
    calls: list[list[SendRequest]] = [[]]
    weight = 0
    for request in requests:
        if weight >= SCRIPT_RECIPIENTS:
            calls.append([])
            weight = 0
        calls[-1].append(request)
        weight += len(request.recipients)
    return calls


def _valid_phone(phone: str, region: str) -> str:
    try:
        return normalise_phone(phone, region)
    except PhoneError as exc:
        raise InvalidRequestError("phone", exc.reason) from None


def _refused(request: SendRequest) -> list[dict[str, str]]:
    return [
        {"field": r.field, "phone": r.phone, "reason": r.reason} for r in request.refused_numbers
    ]


def _parts(recipients: int, chunk: int) -> int:
    return 0 if recipients <= chunk else -(-recipients // chunk)


def part_key(key: str, number: int, parts: int) -> str:
    """The key of part ``number`` (from 1) of a split message: ``<key>#<number>/<parts>``."""
    return f"{key}#{number}/{parts}"


def _split_item(request: SendRequest, now: float, source: str, chunk: int) -> list[Any]:
    """A message with more than ``chunk`` recipients: a parent record that lists its parts
    (it keeps the whole request but has no job of its own) and one message per part."""
    parts = _parts(len(request.recipients), chunk)
    children = [
        _item(
            replace(
                request,
                key=part_key(request.key, n + 1, parts),
                refused_numbers=(),
                recipients=request.recipients[n * chunk : (n + 1) * chunk],
            ),
            now,
            source,
            parent=keys.message_id(request.key),
        )
        for n in range(parts)
    ]
    parent = _item(request, now, source)
    record = parent[5]
    record.update(job_id="", parts=json.dumps([child[5]["message_id"] for child in children]))
    history = json.loads(parent[6])
    history["parts"] = parts
    return [
        parent[0],
        parent[1],
        "",
        "",
        "",
        record,
        json.dumps(history),
        {},
        children,
        _campaign_index(request),
    ]


def _item(request: SendRequest, now: float, source: str, *, parent: str | None = None) -> list[Any]:
    mid = keys.message_id(request.key)
    jid = keys.job_id(mid)
    queue = queue_name(request.lane)
    stamp = utc_now_iso()
    record: dict[str, str] = {
        "key": request.key,
        "message_id": mid,
        "state": State.QUEUED.value,
        "lane": request.lane.value,
        "job_id": jid,
        "source": source,
        "created_at": stamp,
        "updated_at": stamp,
        "request": json.dumps(request.to_stored(), ensure_ascii=False),
        "recipients": str(len(request.recipients)),
        "segments": str(request.segments),
        "encoding": request.encoding,
        "refused_numbers": json.dumps(_refused(request), ensure_ascii=False)
        if request.refused_numbers
        else "[]",
        "attempts": "0",
    }
    if request.valid_for_s is not None:
        record["expires_at"] = repr(now + request.valid_for_s)
    if parent is not None:
        record["parent"] = parent
    history = {"state": State.QUEUED.value, "at": stamp, "lane": request.lane.value}
    if request.refused_numbers:
        history["refused_numbers"] = str(len(request.refused_numbers))
    return [
        keys.message(mid),
        keys.history(mid),
        keys.rq_job(jid),
        keys.rq_queue(queue),
        jid,
        record,
        json.dumps(history),
        job_fields(mid, queue, stamp),
        [],
        _campaign_index(request) if parent is None else "",
    ]


def _campaign_index(request: SendRequest) -> str:
    """The campaign index a message (not a part) is added to, or ''."""
    return keys.campaign_index(request.campaign) if request.campaign else ""


def job_fields(mid: str, queue: str, stamp: str) -> dict[str, str]:
    """The RQ job hash of a message's send job: JSON data naming ``send_sms(message_id)``."""
    rq_stamp = stamp.replace("+00:00", "Z")
    return {
        "data": f'["{SEND_SMS_JOB}", null, ["{mid}"], {{}}]',  # json.dumps' exact output
        "origin": queue,
        "status": "queued",
        "description": JOB_DESCRIPTION,
        "created_at": rq_stamp,
        "enqueued_at": rq_stamp,
    }
