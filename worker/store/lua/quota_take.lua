-- Take ``cost`` SMS from a producer account's daily and monthly quotas, both or neither. A
-- request smsq already holds (its message or its key's tombstone exists) is a duplicate: it is
-- answered as it was, so it is not charged again.
--
-- KEYS[1] day: the account's counter for today (Paris calendar day)
-- KEYS[2] month: the account's counter for this month
-- KEYS[3] message: the request's message hash
-- KEYS[4] tombstone: the request key's tombstone
-- ARGV[1] cost: SMS parts x recipients of the request
-- ARGV[2] day_limit: the daily quota, '0' for none
-- ARGV[3] month_limit: the monthly quota, '0' for none
-- ARGV[4] day_ttl: seconds the daily counter is kept
-- ARGV[5] month_ttl: seconds the monthly counter is kept
--
-- Returns {'charged' | 'known', used today, used this month} or {'day' | 'month', used, limit}.
local day = KEYS[1]
local month = KEYS[2]
local message = KEYS[3]
local tombstone = KEYS[4]
local cost = tonumber(ARGV[1])
local day_limit = tonumber(ARGV[2])
local month_limit = tonumber(ARGV[3])
local day_ttl = ARGV[4]
local month_ttl = ARGV[5]

local used_day = tonumber(redis.call('GET', day) or '0')
local used_month = tonumber(redis.call('GET', month) or '0')
if redis.call('EXISTS', message, tombstone) > 0 then return {'known', used_day, used_month} end
if day_limit > 0 and used_day + cost > day_limit then return {'day', used_day, day_limit} end
if month_limit > 0 and used_month + cost > month_limit then
  return {'month', used_month, month_limit}
end
used_day = redis.call('INCRBY', day, cost)
redis.call('EXPIRE', day, day_ttl)
used_month = redis.call('INCRBY', month, cost)
redis.call('EXPIRE', month, month_ttl)
return {'charged', used_day, used_month}
