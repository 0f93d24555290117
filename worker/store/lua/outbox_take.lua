-- Take the next due callback event and lease it (its score moves to now + the lease) for one
-- delivery attempt; an id whose envelope is gone is dropped on the way.
--
-- KEYS[1] due: the outbox's due sorted set (event id scored by when it may be attempted)
-- KEYS[2] events: the outbox's events hash (event id -> JSON envelope)
-- KEYS[3] attempts: the attempts hash (event id -> attempts started)
-- ARGV[1] lease_s: seconds the event is leased to this dispatcher
--
-- Returns {} when nothing is due, else {id, envelope, attempt, now (Redis time)}.
local due = KEYS[1]
local events = KEYS[2]
local attempts = KEYS[3]
local lease_s = tonumber(ARGV[1])
-- include: lib/now.lua

local now = redis_now()
while true do
  local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, 1)
  if #ids == 0 then return {} end
  local id = ids[1]
  local envelope = redis.call('HGET', events, id)
  if envelope then
    redis.call('ZADD', due, now + lease_s, id)
    local attempt = redis.call('HINCRBY', attempts, id, 1)
    return {id, envelope, attempt, tostring(now)}
  end
  redis.call('ZREM', due, id)
end
