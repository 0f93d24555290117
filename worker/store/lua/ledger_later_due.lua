-- Move one message whose later retry round is due back to its lane as a fresh RQ job, if it is
-- still queued for that round (a cancel, a purge or an expiry meanwhile only drops the entry).
--
-- KEYS[1] message: the message hash
-- KEYS[2] history: the message's history list
-- KEYS[3] dead_set: the dead letters' sorted set
-- KEYS[4] dead_letter: the message's dead-letter hash
-- KEYS[5] sending: the sorted set of messages being sent
-- KEYS[6] metrics: the counters hash
-- KEYS[7] wake: the workers' wake list
-- KEYS[8] later: the sorted set of messages waiting for a later round
-- ARGV[1] allowed_json: the states it may leave, a JSON list
-- ARGV[2] now_iso: the time, ISO 8601
-- ARGV[3] ttl: seconds the record and its history are kept
-- ARGV[4] reason: why, for the history entry
-- ARGV[5] actor: who, for the history entry
-- ARGV[6] front: '1' to put the job at the front of its lane, else '0'
-- ARGV[7] job_json: the RQ job hash's fields, a JSON object (origin is set here)
-- ARGV[8] later_id: the id in the later set
-- ARGV[9] now: the time, epoch seconds: an entry not due yet is left alone
--
-- Returns {'notdue'}, {'missing'}, {the state the message had} or {'queued', job id}.
local message = KEYS[1]
local history = KEYS[2]
local dead_set = KEYS[3]
local dead_letter = KEYS[4]
local sending = KEYS[5]
local metrics = KEYS[6]
local wake = KEYS[7]
local later = KEYS[8]
local allowed_json = ARGV[1]
local now_iso = ARGV[2]
local ttl = ARGV[3]
local reason = ARGV[4]
local actor = ARGV[5]
local front = ARGV[6]
local job_json = ARGV[7]
local later_id = ARGV[8]
local now = ARGV[9]
-- include: lib/requeue.lua

local score = redis.call('ZSCORE', later, later_id)
if not score or tonumber(score) > tonumber(now) then return {'notdue'} end
redis.call('ZREM', later, later_id)
if not redis.call('HGET', message, 'next_attempt_at') then
  local state = redis.call('HGET', message, 'state')
  return {state or 'missing'}
end
local result = requeue()
if result[1] == 'queued' then redis.call('HDEL', message, 'next_attempt_at', 'held_for') end
return result
