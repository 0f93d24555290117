-- Erase one person from a callback event (smsq purge --phone): replace its envelope by a
-- redacted one, or delete the event, but only if the envelope is still the one the purge read
-- (an event delivered or changed meanwhile is left to be read again). A dead callback's hash
-- keeps its TTL when rewritten.
--
-- KEYS[1] events: the outbox's events hash
-- KEYS[2] due: the outbox's due sorted set
-- KEYS[3] attempts: the attempts hash
-- KEYS[4] dead: the dead callbacks' index
-- KEYS[5] dead_event: the event's dead-callback hash
-- KEYS[6] reasons: the dead callbacks' reasons hash of earlier versions
-- ARGV[1] id: the event id
-- ARGV[2] where: "pending" (in the events hash) or "dead" (in its dead-callback hash)
-- ARGV[3] expected: the envelope the purge read
-- ARGV[4] replacement: the redacted envelope, or "" to delete the event
--
-- Returns 1 when done, 0 when the envelope is no longer the one read.
local events = KEYS[1]
local due = KEYS[2]
local attempts = KEYS[3]
local dead = KEYS[4]
local dead_event = KEYS[5]
local reasons = KEYS[6]
local id = ARGV[1]
local where = ARGV[2]
local expected = ARGV[3]
local replacement = ARGV[4]

local current
if where == 'pending' then
  current = redis.call('HGET', events, id)
else
  current = redis.call('HGET', dead_event, 'envelope')
end
if current ~= expected then return 0 end
if replacement ~= '' then
  if where == 'pending' then
    redis.call('HSET', events, id, replacement)
  else
    redis.call('HSET', dead_event, 'envelope', replacement)
  end
  return 1
end
if where == 'pending' then
  redis.call('HDEL', events, id)
  redis.call('ZREM', due, id)
  redis.call('HDEL', attempts, id)
  redis.call('HDEL', reasons, id)
else
  redis.call('DEL', dead_event)
end
redis.call('ZREM', dead, id)
return 1
