-- Give back what a stopped worker held: each entry returns to the front of the intake list,
-- unless it was already held by a worker that stopped; then it goes to the poison list (and
-- from there to the dead letters), so no entry can stop workers over and over.
--
-- KEYS[1] processing: the stopped worker's processing list
-- KEYS[2] intake: the intake list
-- KEYS[3] attempts: hash, digest of an entry -> times a worker stopped while holding it
-- KEYS[4] poison: entries that stopped a worker twice, waiting to become dead letters
-- ARGV[1] max_attempts: stops after which an entry is poison
-- ARGV[2] attempts_ttl_s: how long the attempts hash is kept after its last change
--
-- Returns {entries given back, entries found poison}.
local processing = KEYS[1]
local intake = KEYS[2]
local attempts = KEYS[3]
local poison = KEYS[4]
local max_attempts = tonumber(ARGV[1])
local attempts_ttl_s = tonumber(ARGV[2])

local returned, poisoned = 0, 0
while true do
  local item = redis.call('RPOP', processing)
  if not item then break end
  local digest = redis.sha1hex(item)
  if redis.call('HINCRBY', attempts, digest, 1) >= max_attempts then
    redis.call('HDEL', attempts, digest)
    redis.call('RPUSH', poison, item)
    poisoned = poisoned + 1
  else
    redis.call('LPUSH', intake, item)
    returned = returned + 1
  end
end
if redis.call('EXISTS', attempts) == 1 then
  redis.call('EXPIRE', attempts, attempts_ttl_s)
end
return {returned, poisoned}
