-- Cut the shared effective rate by a factor (at most once per cooldown, never below the floor)
-- and, for a Retry-After, hold every new reservation back that long.
--
-- KEYS[1] tat_key: the theoretical arrival time, Redis-TIME seconds
-- KEYS[2] state: the slowdown hash (rate, cut_at, grown_at)
-- ARGV[1] limit: the configured rate, segments per second
-- ARGV[2] floor_fraction: the effective rate never drops below limit times this
-- ARGV[3] factor: the multiplicative decrease
-- ARGV[4] cooldown_s: least seconds between two decreases, fleet-wide
-- ARGV[5] pause_s: seconds to hold new reservations back (0: none)
-- ARGV[6] burst: the bucket size, segments
-- ARGV[7] state_ttl_s: seconds an unrefreshed slowdown is kept
--
-- Returns {decreased 0/1, effective rate}.
local tat_key = KEYS[1]
local state = KEYS[2]
local limit = tonumber(ARGV[1])
local floor_fraction = tonumber(ARGV[2])
local factor = tonumber(ARGV[3])
local cooldown_s = tonumber(ARGV[4])
local pause_s = tonumber(ARGV[5])
local burst = tonumber(ARGV[6])
local state_ttl_s = tonumber(ARGV[7])
-- include: lib/now.lua

local now = redis_now()
local floor = limit * floor_fraction
local rate = tonumber(redis.call('HGET', state, 'rate')) or limit
if rate > limit then rate = limit end
if rate < floor then rate = floor end
local cut = 0
local cut_at = tonumber(redis.call('HGET', state, 'cut_at')) or 0
if now - cut_at >= cooldown_s then
  rate = math.max(rate * factor, floor)
  local stamp = string.format('%.6f', now)
  redis.call('HSET', state, 'rate', string.format('%.6f', rate), 'cut_at', stamp,
             'grown_at', stamp)
  redis.call('EXPIRE', state, state_ttl_s)
  cut = 1
end
if pause_s > 0 then
  local hold = now + pause_s + (burst - 1) / rate
  local tat = tonumber(redis.call('GET', tat_key)) or now
  if tat < hold then
    redis.call('SET', tat_key, string.format('%.6f', hold),
               'PX', math.ceil((hold - now) * 1000) + 1000)
  end
end
return {cut, string.format('%.6f', rate)}
