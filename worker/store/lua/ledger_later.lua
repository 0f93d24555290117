-- Park a message whose attempts provably never reached AllMySMS for a later retry round:
-- sending -> queued with next_attempt_at, and its id in the later set scored by when the round
-- is due. No job is on a lane meanwhile; the reconciler puts one there when the round is due.
--
-- KEYS[1] message: the message hash
-- KEYS[2] history: the message's history list
-- KEYS[3] sending: the sorted set of messages being sent
-- KEYS[4] later: the sorted set of messages waiting for a later round
-- ARGV[1] now_iso: the time, ISO 8601
-- ARGV[2] ttl: seconds the record and its history are kept
-- ARGV[3] reason: why, for the history entry
-- ARGV[4] actor: who, for the history entry
-- ARGV[5] due: when the round is due, epoch seconds
-- ARGV[6] due_iso: the same, ISO 8601 (the next_attempt_at field)
-- ARGV[7] since: when the first round was parked, epoch seconds (kept if already set)
-- ARGV[8] worker: the worker that must hold the claim
-- ARGV[9] attempts: POST attempts of the round that just failed
-- ARGV[10] error_text: why they failed (AllMySMS was not reached)
-- ARGV[11] hold: '' for a later retry round; else why it is held before any attempt
--   ('sending_hours': a marketing message outside its window), which counts no round
--
-- Returns 'ok', or the state the message had when it was not this worker's send.
local message = KEYS[1]
local history = KEYS[2]
local sending = KEYS[3]
local later = KEYS[4]
local now_iso = ARGV[1]
local ttl = ARGV[2]
local reason = ARGV[3]
local actor = ARGV[4]
local due = ARGV[5]
local due_iso = ARGV[6]
local since = ARGV[7]
local worker = ARGV[8]
local attempts = ARGV[9]
local error_text = ARGV[10]
local hold = ARGV[11] or ''

local state = redis.call('HGET', message, 'state')
if not state then return 'missing' end
if state ~= 'sending' then return state end
if redis.call('HGET', message, 'claimed_by') ~= worker then return 'sending' end
local mid = redis.call('HGET', message, 'message_id')
local entry = {state = 'queued', at = now_iso, reason = reason, by = actor, from = state,
  next_attempt_at = due_iso}
if hold == '' then
  entry.round = redis.call('HINCRBY', message, 'later_rounds', 1)
  entry.attempts = tonumber(attempts)
  entry.error = error_text
  redis.call('HSETNX', message, 'later_since', since)
  redis.call('HSET', message, 'attempts', attempts, 'error', error_text)
else
  entry.held_for = hold
  redis.call('HSET', message, 'held_for', hold)
end
redis.call('HSET', message, 'state', 'queued', 'next_attempt_at', due_iso, 'updated_at', now_iso)
redis.call('HDEL', message, 'awaiting_turn')
redis.call('EXPIRE', message, ttl)
redis.call('RPUSH', history, cjson.encode(entry))
redis.call('EXPIRE', history, ttl)
redis.call('ZREM', sending, mid)
redis.call('ZADD', later, due, mid)
return 'ok'
