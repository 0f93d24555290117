-- Take a queued message's send guard (queued -> sending), or expire it past its valid_for_s.
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
-- ARGV[1] now: the time, epoch seconds
-- ARGV[2] now_iso: the time, ISO 8601
-- ARGV[3] ttl: seconds the record and its history are kept
-- ARGV[4] worker: the claiming worker's name
-- ARGV[5] event_id: id of the final callback event, if the message expires here
-- ARGV[6] hold: '1' to hold the claim (awaiting_turn) until start_posting, else '0'
--
-- Returns {outcome, request?, expires_at?}: {'claimed', request json, expires_at or ''} (state
-- is now sending), {'expired'}, {'missing'}, or {the state the message already had}.
local message = KEYS[1]
local history = KEYS[2]
local dead_set = KEYS[3]
local dead_letter = KEYS[4]
local sending = KEYS[5]
local metrics = KEYS[6]
local callback_events = KEYS[7]
local callback_due = KEYS[8]
local callback_wake = KEYS[9]
local now = tonumber(ARGV[1])
local now_iso = ARGV[2]
local ttl = ARGV[3]
local worker = ARGV[4]
local event_id = ARGV[5]
local hold = ARGV[6]
-- include: lib/apply.lua

local state = redis.call('HGET', message, 'state')
if not state then return {'missing'} end
if state ~= 'queued' then return {state} end
local expires = redis.call('HGET', message, 'expires_at')
if expires and expires ~= '' and now > tonumber(expires) then
  local fields = {updated_at = now_iso, error = 'valid_for_s ran out before the send started'}
  local entry = cjson.encode({state = 'expired', at = now_iso, worker = worker})
  local dead = {dead_id = redis.call('HGET', message, 'message_id'), kind = 'message',
    state = 'expired', reason = fields.error, at = now_iso,
    key = redis.call('HGET', message, 'key'),
    message_id = redis.call('HGET', message, 'message_id'),
    lane = redis.call('HGET', message, 'lane'), job_id = redis.call('HGET', message, 'job_id')}
  apply(message, history, dead_set, dead_letter, 'expired', fields, entry, dead, now, ttl,
    event_id)
  return {'expired'}
end
local fields = {updated_at = now_iso, claimed_by = worker}
if hold == '1' then fields['awaiting_turn'] = worker end
local entry = cjson.encode({state = 'sending', at = now_iso, worker = worker})
apply(message, history, dead_set, dead_letter, 'sending', fields, entry, nil, now, ttl, '')
return {'claimed', redis.call('HGET', message, 'request'), expires or ''}
