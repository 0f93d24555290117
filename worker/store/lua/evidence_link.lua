-- Add a recipient's smsId to a message settled from evidence (its answer was lost, so its
-- sms_ids hold only the recipients whose receipts proved it), and index it, so that
-- recipient's receipts and replies find the message like any other.
--
-- KEYS[1] message: the message hash
-- KEYS[2] index: the smsId index key of the new smsId
-- ARGV[1] phone: the recipient (one of the request's, checked by the caller)
-- ARGV[2] sms_id: its smsId
-- ARGV[3] ttl: seconds the index is kept
--
-- Returns 1 when linked; 0 when the message is not sent, was not settled from evidence, or
-- already has an smsId for that recipient.
local message = KEYS[1]
local index = KEYS[2]
local phone = ARGV[1]
local sms_id = ARGV[2]
local ttl = ARGV[3]

if redis.call('HGET', message, 'state') ~= 'sent' then return 0 end
local by = redis.call('HGET', message, 'settled_by')
if not by or by == '' then return 0 end
local raw = redis.call('HGET', message, 'sms_ids')
local ids = {}
if raw and raw ~= '' then ids = cjson.decode(raw) end
if ids[phone] then return 0 end
ids[phone] = sms_id
redis.call('HSET', message, 'sms_ids', cjson.encode(ids))
redis.call('SET', index, redis.call('HGET', message, 'message_id'), 'EX', ttl)
return 1
