-- Give a held claim (awaiting_turn still names its holder: nothing was posted) back to its lane
-- unsent: its old job leaves the lane's intermediate list, and a fresh job goes on the lane, so
-- exactly one job remains for the message.
--
-- KEYS[1] message: the message hash
-- KEYS[2] history: the message's history list
-- KEYS[3] dead_set: the dead letters' sorted set
-- KEYS[4] dead_letter: the message's dead-letter hash
-- KEYS[5] sending: the sorted set of messages being sent
-- KEYS[6] metrics: the counters hash
-- KEYS[7] wake: the workers' wake list
-- ARGV[1] allowed_json: the states it may leave, a JSON list
-- ARGV[2] now_iso: the time, ISO 8601
-- ARGV[3] ttl: seconds the record and its history are kept
-- ARGV[4] reason: why, for the history entry
-- ARGV[5] actor: who, for the history entry
-- ARGV[6] front: '1' to put the job at the front of its lane, else '0'
-- ARGV[7] job_json: the RQ job hash's fields, a JSON object (origin is set here)
-- ARGV[8] holder: the worker that must still hold the claim
-- ARGV[9] unposted: '1' when the holder itself gives it back knowing it posted nothing: then a
--   claim of holder whose hold already ended is given back too
--
-- Returns {'posting'} when the claim is not held by holder; {'queued', its job id} when the
-- message is queued already (this give-back ran before: its barrier fell short, or the call was
-- repeated), touching nothing; else as ledger_requeue.lua.
local message = KEYS[1]
local history = KEYS[2]
local dead_set = KEYS[3]
local dead_letter = KEYS[4]
local sending = KEYS[5]
local metrics = KEYS[6]
local wake = KEYS[7]
local allowed_json = ARGV[1]
local now_iso = ARGV[2]
local ttl = ARGV[3]
local reason = ARGV[4]
local actor = ARGV[5]
local front = ARGV[6]
local job_json = ARGV[7]
local holder = ARGV[8]
local unposted = ARGV[9]
-- include: lib/requeue.lua

local held_by = redis.call('HGET', message, 'awaiting_turn')
if held_by ~= holder then
  if held_by or unposted ~= '1' or redis.call('HGET', message, 'claimed_by') ~= holder then
    return {'posting'}
  end
end
local state = redis.call('HGET', message, 'state')
if state == 'queued' then
  -- Its job is the one the earlier give-back made: deleting it would leave no job at all.
  return {'queued', redis.call('HGET', message, 'job_id')}
end
if state ~= 'sending' then
  return {state or 'missing'}
end
local old = redis.call('HGET', message, 'job_id')
if old then
  local lane = redis.call('HGET', message, 'lane')
  redis.call('LREM', '{{RQ_QUEUE_PREFIX}}{{LANE_QUEUE_PREFIX}}' .. lane .. ':intermediate', 1,
    old)
  redis.call('DEL', '{{RQ_JOB_PREFIX}}' .. old)
end
return requeue()
