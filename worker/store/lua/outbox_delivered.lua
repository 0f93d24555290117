-- Forget a delivered callback event (counted once, however many times it is reported).
--
-- KEYS[1] due: the outbox's due sorted set
-- KEYS[2] events: the outbox's events hash
-- KEYS[3] attempts: the attempts hash
-- KEYS[4] metrics: the counters hash
-- ARGV[1] id: the event id
--
-- Returns 1.
local due = KEYS[1]
local events = KEYS[2]
local attempts = KEYS[3]
local metrics = KEYS[4]
local id = ARGV[1]

if redis.call('ZREM', due, id) == 1 then
  redis.call('HINCRBY', metrics, 'callbacks_delivered', 1)
end
redis.call('HDEL', events, id)
redis.call('HDEL', attempts, id)
return 1
