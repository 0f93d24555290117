-- Move a message from its expected state to a new one (compare-and-set), dropping the job
-- whose send this ends (from its lane's intermediate list, and its hash) either way.
--
-- KEYS[1] message: the message hash
-- KEYS[2] history: the message's history list
-- KEYS[3] dead_set: the dead letters' sorted set
-- KEYS[4] dead_letter: the message's dead-letter hash
-- KEYS[5] sending: the sorted set of messages being sent
-- KEYS[6] metrics: the counters hash
-- KEYS[7] callback_events: the callback outbox's events hash
-- KEYS[8] callback_due: the callback outbox's due sorted set
-- KEYS[9] callback_wake: the callback dispatchers' wake list
-- KEYS[10] intermediate: the finished job's intermediate list (without a job: any key the
--   caller may access, unused)
-- ARGV[1] expected: the state the message must be in
-- ARGV[2] new_state: the state it moves to
-- ARGV[3] fields_json: record fields to set, a JSON object
-- ARGV[4] entry: the history entry, JSON
-- ARGV[5] dead_json: the dead letter, a JSON object, or ''
-- ARGV[6] now: the time, epoch seconds
-- ARGV[7] ttl: seconds the record and its history are kept
-- ARGV[8] metrics_json: counter increments, a JSON object
-- ARGV[9] event_id: id of the final callback event
-- ARGV[10] job_id: the finished job's id, or ''
--
-- Returns 'ok', or the state the message actually had ('missing' when there is none).
local message = KEYS[1]
local history = KEYS[2]
local dead_set = KEYS[3]
local dead_letter = KEYS[4]
local sending = KEYS[5]
local metrics = KEYS[6]
local callback_events = KEYS[7]
local callback_due = KEYS[8]
local callback_wake = KEYS[9]
local intermediate = KEYS[10]
local expected = ARGV[1]
local new_state = ARGV[2]
local fields_json = ARGV[3]
local entry = ARGV[4]
local dead_json = ARGV[5]
local now = tonumber(ARGV[6])
local ttl = ARGV[7]
local metrics_json = ARGV[8]
local event_id = ARGV[9]
local job_id = ARGV[10]
-- include: lib/apply.lua

if job_id ~= '' then
  redis.call('LREM', intermediate, 1, job_id)
  redis.call('DEL', '{{RQ_JOB_PREFIX}}' .. job_id)
end
local state = redis.call('HGET', message, 'state')
if state ~= expected then return state or 'missing' end
local dead = nil
if dead_json ~= '' then dead = cjson.decode(dead_json) end
for field, incr in pairs(cjson.decode(metrics_json)) do
  redis.call('HINCRBY', metrics, field, incr)
end
apply(message, history, dead_set, dead_letter, new_state, cjson.decode(fields_json), entry, dead,
  now, ttl, event_id)
return 'ok'
