-- Append one operator action to the audit stream, dropping every entry older than the
-- retention on the way, and let the whole stream expire that long after its last entry (so
-- nothing outlives the retention, even when nothing is written any more).
--
-- KEYS[1] stream: the audit stream
-- ARGV[1] keep_s: seconds an entry is kept
-- ARGV[2] entry_json: the entry's fields, a JSON object of strings
--
-- Returns the new entry's id.
local stream = KEYS[1]
local keep_s = tonumber(ARGV[1])
local entry_json = ARGV[2]

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = {}
for name, value in pairs(cjson.decode(entry_json)) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
local id = redis.call('XADD', stream, 'MINID', '=', now_ms - keep_s * 1000, '*', unpack(fields))
redis.call('EXPIRE', stream, keep_s)
return id
