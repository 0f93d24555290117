-- Move up to a number of entries from the intake list to the processing list, and return them.
--
-- KEYS[1] intake: the intake list backends RPUSH send requests to
-- KEYS[2] processing: the list of entries taken and not yet turned into messages
-- ARGV[1] count: most entries to take
--
-- Returns the entries taken, oldest first.
local intake = KEYS[1]
local processing = KEYS[2]
local count = tonumber(ARGV[1])

local out = {}
for i = 1, count do
  local item = redis.call('LMOVE', intake, processing, 'LEFT', 'RIGHT')
  if not item then break end
  out[i] = item
end
return out
