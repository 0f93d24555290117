-- redis_now(): the Redis server clock, epoch seconds with microseconds (host clocks never
-- matter). Relies on no local of the includer.
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
