-- Move intake entries to this worker's processing list, and return them.
--
-- Takes up to `count` entries, fewer once `max_bytes` have been taken, and one at a time while
-- the attempts hash is not empty (an entry there stopped a worker once: alone, it cannot take
-- others down with it). An entry longer than `max_bytes` is replaced, in the processing list
-- too, by a short marker holding its length and first bytes, so a worker never reads it whole.
--
-- KEYS[1] intake: the intake list backends RPUSH send requests to
-- KEYS[2] processing: this worker's list of entries taken and not yet turned into messages
-- KEYS[3] attempts: hash of entries that were held by a worker that stopped
-- ARGV[1] count: most entries to take
-- ARGV[2] max_bytes: longest entry read whole, and most bytes taken per call
--
-- Returns the entries (or markers) taken, oldest first.
local intake = KEYS[1]
local processing = KEYS[2]
local attempts = KEYS[3]
local count = tonumber(ARGV[1])
local max_bytes = tonumber(ARGV[2])

if redis.call('EXISTS', attempts) == 1 then count = 1 end
local out = {}
local taken_bytes = 0
for i = 1, count do
  local item = redis.call('LMOVE', intake, processing, 'LEFT', 'RIGHT')
  if not item then break end
  if #item > max_bytes then
    item = '{{OVERSIZE_MARKER}}' .. #item .. ':' .. string.sub(item, 1, {{OVERSIZE_HEAD_BYTES}})
    redis.call('LSET', processing, -1, item)
  end
  out[i] = item
  taken_bytes = taken_bytes + #item
  if taken_bytes >= max_bytes then break end
end
return out
