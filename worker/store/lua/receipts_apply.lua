-- Apply a delivery receipt to the message of its smsId: order-safe (a final status is never
-- overwritten) and idempotent; an applied one is kept, logged in the history, counted and, when
-- the request has a callback_url, called back (a receipt event).
--
-- KEYS[1] index: the smsId index key of the receipt's smsId
-- KEYS[2] metrics: the counters hash
-- KEYS[3] callback_events: the callback outbox's events hash
-- KEYS[4] callback_due: the callback outbox's due sorted set
-- KEYS[5] callback_wake: the callback dispatchers' wake list
-- ARGV[1] status: the AllMySMS status, '1' to '5'
-- ARGV[2] status_text: the provider's status text
-- ARGV[3] reception_date: when the operator reported it (provider time), or ''
-- ARGV[4] now_iso: the time, ISO 8601
-- ARGV[5] event_id: id of the receipt callback event
-- ARGV[6] sms_id: the receipt's smsId
-- ARGV[7] campaign_id: the receipt's campaignId, or ''
-- ARGV[8] keep_s: seconds the receipts are kept at most (SMSQ_REPLIES_TTL_S); '0': as long as
--   their message
--
-- Returns {outcome, mid?, phone?, status?}: 'applied', 'duplicate' or 'stale' (with the status
-- now stored), or 'unknown' (the smsId is another system's, expired or purged).
local index = KEYS[1]
local metrics = KEYS[2]
local callback_events = KEYS[3]
local callback_due = KEYS[4]
local callback_wake = KEYS[5]
local status = ARGV[1]
local status_text = ARGV[2]
local reception_date = ARGV[3]
local now_iso = ARGV[4]
local event_id = ARGV[5]
local sms_id = ARGV[6]
local keep_s = tonumber(ARGV[8] or '0') or 0
local campaign_id = ARGV[7]
-- include: lib/callbacks.lua
-- include: lib/lookup.lua

local FINAL = cjson.decode('{{FINAL_STATUSES_JSON}}')
local OUTCOMES = cjson.decode('{{STATUS_OUTCOMES_JSON}}')
local mid, phone, msg = lookup(index, sms_id, metrics, 'receipts_unknown')
if not mid then return {'unknown'} end
local receipts = '{{RECEIPTS_PREFIX}}' .. mid
local previous = redis.call('HGET', receipts, sms_id)
if previous then
  local before = tostring(cjson.decode(previous)['status'])
  if before == status then
    redis.call('HINCRBY', metrics, 'receipts_duplicate', 1)
    return {'duplicate', mid, phone, before}
  end
  if FINAL[before] then
    redis.call('HINCRBY', metrics, 'receipts_stale', 1)
    return {'stale', mid, phone, before}
  end
end
local final = FINAL[status] == true
local receipt = {status = tonumber(status), outcome = OUTCOMES[status], final = final,
  status_text = status_text, reception_date = reception_date, sms_id = sms_id,
  received_at = now_iso}
redis.call('HSET', receipts, sms_id, cjson.encode(receipt))
local ttl = redis.call('TTL', msg)
if keep_s > 0 and (ttl <= 0 or keep_s < ttl) then ttl = keep_s end
if ttl > 0 then redis.call('EXPIRE', receipts, ttl) end
redis.call('RPUSH', msg .. ':history', cjson.encode({state = 'receipt', at = now_iso,
  sms_id = sms_id, status = tonumber(status), outcome = OUTCOMES[status]}))
redis.call('HINCRBY', metrics, 'receipts_applied', 1)
redis.call('HINCRBY', metrics, 'receipt_status:' .. status, 1)
local m = redis.call('HMGET', msg, 'key', 'state', 'provider_status', 'campaign_id')
local campaign = m[4]
if not campaign or campaign == '' then campaign = campaign_id end
enqueue_callback(callback_events, callback_due, callback_wake, metrics, msg, {
  event = '{{EVENT_RECEIPT}}', event_id = event_id, key = m[1], message_id = mid,
  state = m[2], provider_status = tonumber(m[3] or '') or cjson.null, at = now_iso,
  phone = phone, sms_id = sms_id, status = tonumber(status), outcome = OUTCOMES[status],
  final = final, status_text = status_text, reception_date = reception_date,
  campaign_id = (campaign ~= '' and campaign) or cjson.null})
return {'applied', mid, phone, status}
