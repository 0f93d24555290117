-- Lift a lane's pause only when its reason starts with a prefix: the credits watch lifts its own
-- pause, never one an operator put in its place. Returns 1 when it lifted it, else 0.
--
-- KEYS[1] paused: the hash of pauses, lane -> JSON {reason, by, at}
-- ARGV[1] lane: the lane to resume
-- ARGV[2] prefix: how the reason of a pause this caller may lift starts
local paused = KEYS[1]
local lane = ARGV[1]
local prefix = ARGV[2]

local stored = redis.call('HGET', paused, lane)
if not stored then
  return 0
end
local ok, pause = pcall(cjson.decode, stored)
if not ok or type(pause) ~= 'table' or type(pause.reason) ~= 'string' then
  return 0
end
if string.sub(pause.reason, 1, string.len(prefix)) ~= prefix then
  return 0
end
redis.call('HDEL', paused, lane)
return 1
