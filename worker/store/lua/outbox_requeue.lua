-- Send a dead callback again (smsq callbacks --requeue): move it, in one step, out of its
-- dead-callback hash and the dead index back into the outbox as a waiting event due now, with a
-- fresh attempt budget (no attempts counted, and its age counted from now: "created" is reset
-- in the envelope; the event itself, its id and so its webhook-id, stay the same), and wake an
-- idle dispatcher. A dead callback of an earlier version (envelope left in the events hash,
-- reason in the reasons hash) is moved back the same way. An event that is not dead any more
-- (requeued by someone else, erased by smsq purge, expired) is left alone: nothing is
-- duplicated or brought back.
--
-- KEYS[1] due: the outbox's due sorted set
-- KEYS[2] events: the outbox's events hash
-- KEYS[3] attempts: the attempts hash
-- KEYS[4] dead: the dead callbacks' index
-- KEYS[5] dead_event: the event's dead-callback hash {envelope, reason}
-- KEYS[6] reasons: the dead callbacks' reasons hash of earlier versions
-- KEYS[7] wake: the dispatchers' wake tokens
-- KEYS[8] metrics: the counters hash
-- ARGV[1] id: the event id
--
-- Returns 1 when the event was put back in the outbox, 0 when it was not a dead callback.
local due = KEYS[1]
local events = KEYS[2]
local attempts = KEYS[3]
local dead = KEYS[4]
local dead_event = KEYS[5]
local reasons = KEYS[6]
local wake = KEYS[7]
local metrics = KEYS[8]
local id = ARGV[1]
-- include: lib/now.lua

local envelope = redis.call('HGET', dead_event, 'envelope')
if not envelope
    and redis.call('HEXISTS', reasons, id) == 1
    and redis.call('ZSCORE', dead, id)
    and not redis.call('ZSCORE', due, id) then
  envelope = redis.call('HGET', events, id)
end
if not envelope then return 0 end
local now = redis_now()
local decoded = cjson.decode(envelope)
decoded['created'] = now
redis.call('DEL', dead_event)
redis.call('ZREM', dead, id)
redis.call('HDEL', reasons, id)
redis.call('HSET', events, id, cjson.encode(decoded))
redis.call('HDEL', attempts, id)
redis.call('ZADD', due, now, id)
redis.call('LPUSH', wake, '1')
redis.call('LTRIM', wake, 0, {{WAKE_TOKENS_LAST}})
redis.call('HINCRBY', metrics, 'callbacks_requeued', 1)
return 1
