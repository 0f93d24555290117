-- Reschedule a callback event still in the outbox for a later attempt.
--
-- KEYS[1] due: the outbox's due sorted set
-- KEYS[2] metrics: the counters hash
-- ARGV[1] id: the event id
-- ARGV[2] wait_s: seconds from now until the next attempt
--
-- Returns 1 when the event was rescheduled, 0 when it is no longer in the outbox.
local due = KEYS[1]
local metrics = KEYS[2]
local id = ARGV[1]
local wait_s = tonumber(ARGV[2])
-- include: lib/now.lua

local now = redis_now()
local n = redis.call('ZADD', due, 'XX', 'CH', now + wait_s, id)
redis.call('HINCRBY', metrics, 'callbacks_retried', 1)
return n
