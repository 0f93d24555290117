-- The last step before the first POST of a held claim: remove the hold if the claim is still
-- this worker's.
--
-- KEYS[1] message: the message hash
-- ARGV[1] worker: the worker about to post
--
-- Returns 1 when the claim is still this worker's and held (the hold is removed), 0 when it was
-- released (nothing may be posted).
local message = KEYS[1]
local worker = ARGV[1]

if redis.call('HGET', message, 'state') ~= 'sending' then return 0 end
if redis.call('HGET', message, 'awaiting_turn') ~= worker then return 0 end
redis.call('HDEL', message, 'awaiting_turn')
return 1
