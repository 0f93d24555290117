-- Pause a lane unless it, or every lane, is paused already: the credits watch never overwrites
-- an operator's pause (or its own). Returns 1 when it paused the lane, 0 when it left it.
--
-- KEYS[1] paused: the hash of pauses, lane -> JSON {reason, by, at}
-- ARGV[1] lane: the lane to pause
-- ARGV[2] all_lanes: the field that pauses every lane
-- ARGV[3] pause_json: the pause to store
local paused = KEYS[1]
local lane = ARGV[1]
local all_lanes = ARGV[2]
local pause_json = ARGV[3]

if redis.call('HEXISTS', paused, lane) == 1 or redis.call('HEXISTS', paused, all_lanes) == 1 then
  return 0
end
redis.call('HSET', paused, lane, pause_json)
return 1
