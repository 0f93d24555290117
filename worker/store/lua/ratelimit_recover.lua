-- Grow a slowed shared rate back additively (limit / recovery seconds, per second since the last
-- step); delete the slowdown once at full speed.
--
-- KEYS[1] state: the slowdown hash (rate, grown_at)
-- ARGV[1] limit: the configured rate, segments per second
-- ARGV[2] recovery_s: seconds to grow from nothing back to the limit
-- ARGV[3] state_ttl_s: seconds an unrefreshed slowdown is kept
--
-- Returns the effective rate.
local state = KEYS[1]
local limit = tonumber(ARGV[1])
local recovery_s = tonumber(ARGV[2])
local state_ttl_s = tonumber(ARGV[3])
-- include: lib/now.lua

local now = redis_now()
local rate = tonumber(redis.call('HGET', state, 'rate'))
if not rate then return string.format('%.6f', limit) end
local grown_at = tonumber(redis.call('HGET', state, 'grown_at')) or now
rate = rate + limit / recovery_s * math.max(now - grown_at, 0)
if rate >= limit then
  redis.call('DEL', state)
  return string.format('%.6f', limit)
end
redis.call('HSET', state, 'rate', string.format('%.6f', rate),
           'grown_at', string.format('%.6f', now))
redis.call('EXPIRE', state, state_ttl_s)
return string.format('%.6f', rate)
