-- Give up on a callback event: keep it with its reason for operators; dead callbacks older than
-- the keep time are forgotten on the way.
--
-- KEYS[1] due: the outbox's due sorted set
-- KEYS[2] dead: the dead callbacks' sorted set (scored by when)
-- KEYS[3] reasons: the dead callbacks' reasons hash
-- KEYS[4] events: the outbox's events hash
-- KEYS[5] attempts: the attempts hash
-- KEYS[6] metrics: the counters hash
-- ARGV[1] id: the event id
-- ARGV[2] reason_json: {reason, attempts, http_status}, JSON (at is set here)
-- ARGV[3] keep_s: seconds a dead callback is kept
--
-- Returns 1.
local due = KEYS[1]
local dead = KEYS[2]
local reasons = KEYS[3]
local events = KEYS[4]
local attempts = KEYS[5]
local metrics = KEYS[6]
local id = ARGV[1]
local reason_json = ARGV[2]
local keep_s = tonumber(ARGV[3])
-- include: lib/now.lua

local now = redis_now()
redis.call('ZREM', due, id)
local info = cjson.decode(reason_json)
info['at'] = now
redis.call('ZADD', dead, now, id)
redis.call('HSET', reasons, id, cjson.encode(info))
redis.call('HINCRBY', metrics, 'callbacks_dead', 1)
local old = redis.call('ZRANGEBYSCORE', dead, '-inf', now - keep_s)
for _, old_id in ipairs(old) do
  redis.call('HDEL', reasons, old_id)
  redis.call('HDEL', events, old_id)
  redis.call('HDEL', attempts, old_id)
  redis.call('ZREM', dead, old_id)
end
return 1
