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
-- ARGV[10] error: why they failed (AllMySMS was not reached)
--
-- Returns 'ok', or the state the message had when it was not this worker's send.
local message = KEYS[1]
local history = KEYS[2]
local sending = KEYS[3]
local later = KEYS[4]
local state = redis.call('HGET', message, 'state')
if not state then return 'missing' end
if state ~= 'sending' then return state end
if redis.call('HGET', message, 'claimed_by') ~= ARGV[8] then return 'sending' end
local mid = redis.call('HGET', message, 'message_id')
local rounds = redis.call('HINCRBY', message, 'later_rounds', 1)
redis.call('HSETNX', message, 'later_since', ARGV[7])
redis.call('HSET', message, 'state', 'queued', 'next_attempt_at', ARGV[6], 'updated_at', ARGV[1],
  'attempts', ARGV[9], 'error', ARGV[10])
redis.call('HDEL', message, 'awaiting_turn')
redis.call('EXPIRE', message, ARGV[2])
redis.call('RPUSH', history, cjson.encode({state = 'queued', at = ARGV[1], reason = ARGV[3],
  by = ARGV[4], from = state, next_attempt_at = ARGV[6], round = rounds,
  attempts = tonumber(ARGV[9]), error = ARGV[10]}))
redis.call('EXPIRE', history, ARGV[2])
redis.call('ZREM', sending, mid)
redis.call('ZADD', later, ARGV[5], mid)
return 'ok'
