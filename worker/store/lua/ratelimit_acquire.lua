-- Book a send's place in the global rate limit (GCRA on Redis's clock) if its wait is short
-- enough; a cost above the burst needs a full bucket and carries the rest as debt.
--
-- KEYS[1] tat_key: the theoretical arrival time, Redis-TIME seconds
-- KEYS[2] state: the slowdown hash (effective rate)
-- ARGV[1] limit: the configured rate, segments per second
-- ARGV[2] burst: the bucket size, segments
-- ARGV[3] cost: this send's segments
-- ARGV[4] max_wait_s: the longest wait the caller accepts, seconds
-- ARGV[5] floor_fraction: the effective rate never drops below limit times this
--
-- Returns {booked 0/1, wait seconds, effective rate, Redis time}.
local tat_key = KEYS[1]
local state = KEYS[2]
local limit = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait_s = tonumber(ARGV[4])
local floor_fraction = tonumber(ARGV[5])
-- include: lib/now.lua

local now = redis_now()
local rate = tonumber(redis.call('HGET', state, 'rate')) or limit
local floor = limit * floor_fraction
if rate > limit then rate = limit end
if rate < floor then rate = floor end
local interval = 1 / rate
local tat = tonumber(redis.call('GET', tat_key)) or now
if tat < now then tat = now end
local wait = tat + (math.min(cost, burst) - burst) * interval - now
if wait < 0 then wait = 0 end
if wait > max_wait_s then
  return {0, string.format('%.6f', wait), string.format('%.6f', rate),
          string.format('%.6f', now)}
end
local booked = tat + cost * interval
redis.call('SET', tat_key, string.format('%.6f', booked),
           'PX', math.ceil((booked - now) * 1000) + 1000)
return {1, string.format('%.6f', wait), string.format('%.6f', rate), string.format('%.6f', now)}
