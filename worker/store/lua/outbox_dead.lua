-- Give up on a callback event: move its envelope out of the outbox into a hash of its own with
-- its reason, which expires after the keep time by itself; the index of dead callbacks is
-- trimmed to the keep time on the way and expires with its newest entry. An event whose
-- envelope is gone (erased by smsq purge, or delivered by another dispatcher meanwhile) leaves
-- nothing behind.
--
-- KEYS[1] due: the outbox's due sorted set
-- KEYS[2] dead: the dead callbacks' index, a sorted set of ids scored by when
-- KEYS[3] dead_event: this event's dead-callback hash {envelope, reason}
-- KEYS[4] reasons: the dead callbacks' reasons hash of earlier versions (trimmed only)
-- KEYS[5] events: the outbox's events hash
-- KEYS[6] attempts: the attempts hash
-- KEYS[7] metrics: the counters hash
-- ARGV[1] id: the event id
-- ARGV[2] reason_json: {reason, attempts, http_status}, JSON (at is set here)
-- ARGV[3] keep_s: seconds a dead callback is kept
--
-- Returns 1 when the dead callback was kept, 0 when its envelope was gone.
local due = KEYS[1]
local dead = KEYS[2]
local dead_event = KEYS[3]
local reasons = KEYS[4]
local events = KEYS[5]
local attempts = KEYS[6]
local metrics = KEYS[7]
local id = ARGV[1]
local reason_json = ARGV[2]
local keep_s = tonumber(ARGV[3])
-- include: lib/now.lua

local now = redis_now()
redis.call('ZREM', due, id)
local envelope = redis.call('HGET', events, id)
redis.call('HDEL', events, id)
redis.call('HDEL', attempts, id)
-- Entries of earlier versions kept their envelope in the events hash: forget them on the way.
local old = redis.call('ZRANGEBYSCORE', dead, '-inf', now - keep_s)
for _, old_id in ipairs(old) do
  redis.call('HDEL', reasons, old_id)
  redis.call('HDEL', events, old_id)
  redis.call('HDEL', attempts, old_id)
  redis.call('ZREM', dead, old_id)
end
if not envelope then return 0 end
local info = cjson.decode(reason_json)
info['at'] = now
redis.call('HSET', dead_event, 'envelope', envelope, 'reason', cjson.encode(info))
redis.call('EXPIRE', dead_event, math.ceil(keep_s))
redis.call('ZADD', dead, now, id)
redis.call('EXPIRE', dead, math.ceil(keep_s))
redis.call('HINCRBY', metrics, 'callbacks_dead', 1)
return 1
