"""Write side of the outcome store: the send guard (claim) and state transitions, atomically.

Every state change is one Lua script: it checks the current state (compare-and-set), writes the
fields, appends the history entry and, for a terminal non-success, records the dead letter, so a
message can never hold two terminal states and a key can be claimed for sending only once.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.enqueue import job_fields
from producers.records import utc_now_iso
from producers.states import DEAD_LETTER_STATES, TERMINAL_STATES, State
from producers.store import decoded
from worker.store.outbox_lua import ENQUEUE_LUA
from worker.store.refused import refuse_job


if TYPE_CHECKING:
    from redis import Redis

# A message reaching a terminal state indexes its smsIds (for delivery receipts and replies)
# and, when its request has a callback_url, adds a "message.final" event to the callback outbox:
# both in the script of the transition itself (KEYS[7..9]: callback keys), so neither can be
# missed and the send path pays no extra round trip.
_LIB = ENQUEUE_LUA + """
local TERMINAL = cjson.decode('""" + json.dumps({s.value: True for s in TERMINAL_STATES}) + """')
local function index_sms_ids(raw, mid, ttl)
  if not raw or raw == '' then return end
  for _, sms_id in pairs(cjson.decode(raw)) do
    redis.call('SET', '""" + keys.SMS_ID_PREFIX + """' .. sms_id, mid, 'EX', ttl)
  end
end
local function apply(msg, hist, dead_set, dead_key, new_state, fields, entry, dead, now, ttl,
                     event_id)
  redis.call('HSET', msg, 'state', new_state)
  redis.call('HDEL', msg, 'awaiting_turn')
  local mid = redis.call('HGET', msg, 'message_id')
  if new_state == 'sending' then
    redis.call('ZADD', KEYS[5], now, mid)
  else
    redis.call('ZREM', KEYS[5], mid)
  end
  for field, value in pairs(fields) do redis.call('HSET', msg, field, tostring(value)) end
  redis.call('EXPIRE', msg, ttl)
  redis.call('RPUSH', hist, entry)
  redis.call('EXPIRE', hist, ttl)
  redis.call('HINCRBY', KEYS[6], 'state:' .. new_state, 1)
  if not dead then
    -- A message that leaves a dead-letter state for a good one is no longer a dead letter.
    redis.call('DEL', dead_key)
    redis.call('ZREM', dead_set, mid)
  end
  if dead then
    for field, value in pairs(dead) do redis.call('HSET', dead_key, field, tostring(value)) end
    redis.call('EXPIRE', dead_key, ttl)
    redis.call('ZADD', dead_set, now, dead['dead_id'])
    redis.call('HINCRBY', KEYS[6], 'dead_letters', 1)
  end
  if TERMINAL[new_state] then
    index_sms_ids(fields['sms_ids'], mid, ttl)
    enqueue_callback(KEYS[7], KEYS[8], KEYS[9], KEYS[6], msg,
      final_event(msg, new_state, fields['updated_at'], event_id))
  end
end
"""

# KEYS: msg, history, dead set, dead hash, sending set, metrics, callback keys. ARGV: now
# epoch, now iso, ttl, worker, callback event id, hold '1'|'0'.
# Returns {outcome, request?}: 'claimed' (state is now sending), 'expired', 'missing', or the
# state the message already had. With hold, the claim also sets ``awaiting_turn`` (the worker's
# name): nothing may be posted until :meth:`Ledger.start_posting` removes it, and while it is
# there the message can be given back unsent (:meth:`Ledger.release`).
_CLAIM_LUA = _LIB + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state ~= 'queued' then return {state} end
local now = tonumber(ARGV[1])
local expires = redis.call('HGET', KEYS[1], 'expires_at')
if expires and expires ~= '' and now > tonumber(expires) then
  local fields = {updated_at = ARGV[2], error = 'valid_for_s ran out before the send started'}
  local entry = cjson.encode({state = 'expired', at = ARGV[2], worker = ARGV[4]})
  local dead = {dead_id = redis.call('HGET', KEYS[1], 'message_id'), kind = 'message',
    state = 'expired', reason = fields.error, at = ARGV[2],
    key = redis.call('HGET', KEYS[1], 'key'),
    message_id = redis.call('HGET', KEYS[1], 'message_id'),
    lane = redis.call('HGET', KEYS[1], 'lane'), job_id = redis.call('HGET', KEYS[1], 'job_id')}
  apply(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 'expired', fields, entry, dead, now, ARGV[3],
    ARGV[5])
  return {'expired'}
end
local fields = {updated_at = ARGV[2], claimed_by = ARGV[4]}
if ARGV[6] == '1' then fields['awaiting_turn'] = ARGV[4] end
local entry = cjson.encode({state = 'sending', at = ARGV[2], worker = ARGV[4]})
apply(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 'sending', fields, entry, nil, now, ARGV[3], '')
return {'claimed', redis.call('HGET', KEYS[1], 'request')}
"""

# KEYS: msg, history, dead set, dead hash, sending set, metrics, callback keys, the finished
# job's intermediate list (or ''). ARGV: expected state, new state, fields json, history json,
# dead-letter json or '', now epoch, ttl, metric increments json, callback event id, the
# finished job's id (or ''). Returns 'ok' or the actual state. The job, when given, leaves its
# intermediate list and its hash is deleted either way: its send is over.
_TRANSITION_LUA = _LIB + """
if ARGV[10] ~= '' then
  redis.call('LREM', KEYS[10], 1, ARGV[10])
  redis.call('DEL', 'rq:job:' .. ARGV[10])
end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= ARGV[1] then return state or 'missing' end
local dead = nil
if ARGV[5] ~= '' then dead = cjson.decode(ARGV[5]) end
for field, incr in pairs(cjson.decode(ARGV[8])) do redis.call('HINCRBY', KEYS[6], field, incr) end
apply(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], cjson.decode(ARGV[3]), ARGV[4], dead,
  tonumber(ARGV[6]), ARGV[7], ARGV[9])
return 'ok'
"""


# KEYS: msg, history, dead set, dead hash, sending set, metrics, wake. ARGV: allowed states
# json, now iso, ttl, reason, actor, front '1'|'0', job fields json. A fresh RQ job (id
# smsq-<message id>-r<n>, see keys.requeued_job_id) goes onto the message's lane; its dead
# letter is dropped.
_REQUEUE_LUA = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
local allowed = false
for _, s in ipairs(cjson.decode(ARGV[1])) do if s == state then allowed = true end end
if not allowed then return {state} end
local mid = redis.call('HGET', KEYS[1], 'message_id')
local queue = 'smsq-' .. redis.call('HGET', KEYS[1], 'lane')
local jid = 'smsq-' .. mid .. '-r' .. redis.call('HINCRBY', KEYS[1], 'requeues', 1)
local job = cjson.decode(ARGV[7])
job['origin'] = queue
for field, value in pairs(job) do redis.call('HSET', 'rq:job:' .. jid, field, value) end
if ARGV[6] == '1' then
  redis.call('LPUSH', 'rq:queue:' .. queue, jid)
else
  redis.call('RPUSH', 'rq:queue:' .. queue, jid)
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'job_id', jid, 'updated_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'awaiting_turn')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('RPUSH', KEYS[2], cjson.encode({state = 'queued', at = ARGV[2], reason = ARGV[4],
  by = ARGV[5], from = state}))
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[5], mid)
redis.call('DEL', KEYS[4])
redis.call('ZREM', KEYS[3], mid)
redis.call('HINCRBY', KEYS[6], 'requeued', 1)
redis.call('LPUSH', KEYS[7], '1')
redis.call('LTRIM', KEYS[7], 0, 63)
return {'queued', jid}
"""

# A claimed message whose worker has not posted yet (``awaiting_turn`` still names the claimer,
# ARGV[8]) goes back to its lane unsent: its old job leaves the lane's intermediate list in the
# same script, so exactly one job remains for it. KEYS/ARGV[1..7] as in _REQUEUE_LUA.
_RELEASE_LUA = """
local holder = redis.call('HGET', KEYS[1], 'awaiting_turn')
if not holder or holder ~= ARGV[8] then return {'posting'} end
local old = redis.call('HGET', KEYS[1], 'job_id')
if old then
  local lane = redis.call('HGET', KEYS[1], 'lane')
  redis.call('LREM', 'rq:queue:smsq-' .. lane .. ':intermediate', 1, old)
  redis.call('DEL', 'rq:job:' .. old)
end
""" + _REQUEUE_LUA

# KEYS: msg. ARGV: worker. The last step before the first POST of a held claim: 1 when the
# claim is still this worker's and held (the hold is removed), 0 when it was released.
_START_POSTING_LUA = """
if redis.call('HGET', KEYS[1], 'state') ~= 'sending' then return 0 end
if redis.call('HGET', KEYS[1], 'awaiting_turn') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'awaiting_turn')
return 1
"""


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: str
    """``claimed``, ``expired``, ``missing``, or the state the message already had."""
    request: dict[str, Any] | None = None


class Ledger:
    """State changes of messages, each one atomic and checked against the expected state."""

    def __init__(self, connection: Redis, *, ttl_s: int, worker_name: str) -> None:
        self._redis = connection
        self._ttl_s = ttl_s
        self._worker = worker_name
        self._claim = connection.register_script(_CLAIM_LUA)
        self._transition = connection.register_script(_TRANSITION_LUA)
        self._requeue = connection.register_script(_REQUEUE_LUA)
        self._release = connection.register_script(_RELEASE_LUA)
        self._start_posting = connection.register_script(_START_POSTING_LUA)

    @property
    def worker_name(self) -> str:
        return self._worker

    def claim(self, message_id: str, *, hold: bool = False) -> Claim:
        """Take the send guard: ``queued`` → ``sending``, or ``expired`` past ``valid_for_s``.

        Only one caller, ever, gets ``claimed`` for a message: a second job, an RQ re-run or a
        duplicate enqueue all find the state already moved on and send nothing.

        With ``hold`` (the send will first wait for its rate-limit turn), the claim is marked
        not posted yet: if the worker dies while waiting, :meth:`release` gives the message
        back to its lane instead of leaving it ``unknown``. Call :meth:`start_posting` before
        the first POST.
        """
        raw = self._claim(keys=[*_keys(message_id), *keys.callback_keys()],
                          args=[time.time(), utc_now_iso(), self._ttl_s, self._worker,
                                uuid.uuid4().hex, "1" if hold else "0"])
        outcome = decoded(raw[0])
        request = json.loads(decoded(raw[1])) if outcome == "claimed" else None
        return Claim(outcome, request)

    def finish(self, message_id: str, state: State, fields: dict[str, Any], *,
               reason: str, record: dict[str, str], expected: State = State.SENDING,
               metrics: dict[str, int] | None = None, actor: str | None = None,
               job: tuple[str, str] | None = None) -> bool:
        """Move a message from ``expected`` to terminal ``state``; False if it was not there.

        Args:
            fields: record fields to set (None values are skipped).
            reason: short operator-facing reason, stored in history and in the dead letter.
            record: identifying fields of the message (key, lane, job_id) for the dead letter.
            job: ``(intermediate list, job id)`` of the job whose send this ends: dropped in
                the same script (a worker's last round trip for the job).
        """
        now = utc_now_iso()
        clean = {k: _field(v) for k, v in fields.items() if v is not None}
        clean["updated_at"] = now
        entry: dict[str, Any] = {"state": state.value, "at": now, "reason": reason}
        if actor:
            entry["by"] = actor
        for name in ("provider_status", "attempts", "error"):
            if fields.get(name) is not None:
                entry[name] = fields[name]
        dead = ""
        if state in DEAD_LETTER_STATES:
            dead = json.dumps({
                "dead_id": message_id, "kind": "message", "state": state.value, "reason": reason,
                "at": now, "message_id": message_id,
                "provider_status": fields.get("provider_status") or "",
                **{k: record.get(k, "") for k in ("key", "lane", "job_id")},
            })
        intermediate, job_id = job or ("", "")
        result = self._transition(
            keys=[*_keys(message_id), *keys.callback_keys(), intermediate],
            args=[expected.value, state.value, json.dumps(clean), json.dumps(entry), dead,
                  time.time(), self._ttl_s, json.dumps(metrics or {}), uuid.uuid4().hex,
                  job_id],
        )
        return decoded(result) == "ok"


    def requeue(self, message_id: str, *, allowed: frozenset[State], reason: str, actor: str,
                front: bool = False) -> tuple[str, str | None]:
        """Put a message back in its lane as a fresh RQ job, if its state is in ``allowed``.

        Only states where AllMySMS provably sent nothing may be allowed; the caller decides.

        Returns:
            ``("queued", job_id)``, or ``(current state or "missing", None)`` when refused.
        """
        now = utc_now_iso()
        job = job_fields(message_id, "", now)
        raw = self._requeue(
            keys=[*_keys(message_id), keys.WAKE],
            args=[json.dumps(sorted(s.value for s in allowed)), now, self._ttl_s, reason, actor,
                  "1" if front else "0", json.dumps(job)],
        )
        outcome = decoded(raw[0])
        return (outcome, decoded(raw[1])) if outcome == "queued" else (outcome, None)


    def start_posting(self, message_id: str) -> bool:
        """End a held claim's wait: True when this worker still holds the message and may
        post; False when it was released meanwhile (the worker must post nothing)."""
        return bool(self._start_posting(keys=[keys.message(message_id)], args=[self._worker]))

    def release(self, message_id: str, *, holder: str, reason: str, actor: str) -> str | None:
        """Give a held claim of ``holder`` back to its lane, at the front, as a fresh job.

        Safe against the holder itself: either this runs first and the holder's
        :meth:`start_posting` answers False, or the holder started posting and this refuses.

        Returns:
            The new job id, or None when the message is not held by ``holder`` (it may have
            been posted: the caller settles it as before).
        """
        now = utc_now_iso()
        raw = self._release(
            keys=[*_keys(message_id), keys.WAKE],
            args=[json.dumps([State.SENDING.value]), now, self._ttl_s, reason, actor, "1",
                  json.dumps(job_fields(message_id, "", now)), holder],
        )
        return decoded(raw[1]) if decoded(raw[0]) == "queued" else None

    def dead_letter_job(self, message_id: str, reason: str) -> None:
        """Record a job whose message no longer exists."""
        refuse_job(self._redis, keys.job_id(message_id), reason, ttl_s=self._ttl_s,
                   message_id=message_id)

    def count(self, metrics: dict[str, int]) -> None:
        """Add to the monotonic counters behind ``smsq stats`` and ``/metrics``."""
        if metrics:
            pipe = self._redis.pipeline(transaction=False)
            for name, increment in metrics.items():
                pipe.hincrby(keys.METRICS, name, increment)
            pipe.execute()


def _keys(message_id: str) -> list[str]:
    return [keys.message(message_id), keys.history(message_id), keys.DEAD_LETTERS,
            keys.dead_letter(message_id), keys.SENDING, keys.METRICS]


def _field(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)

