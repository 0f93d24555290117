-- Store a reply (MO SMS) to the message of its smsId, once per smsMoId; a new one to a message
-- whose request has a callback_url is called back (a reply event, with the person's text: the
-- producer asked for the conversation). No phone number is stored: the record finds it from
-- the smsId. A new reply to a gateway message is also pushed, as a reference, to its producer's
-- getPulls list (worker/store/pulls.py), which keeps the newest PULLS_MAX.
--
-- KEYS[1] index: the smsId index key of the smsId the reply answers
-- KEYS[2] metrics: the counters hash
-- KEYS[3] callback_events: the callback outbox's events hash
-- KEYS[4] callback_due: the callback outbox's due sorted set
-- KEYS[5] callback_wake: the callback dispatchers' wake list
-- ARGV[1] sms_mo_id: the reply's smsMoId
-- ARGV[2] reply_json: the reply, a JSON object (received_at is set here)
-- ARGV[3] now_iso: the time, ISO 8601
-- ARGV[4] sms_id: the smsId it answers
-- ARGV[5] event_id: id of the reply callback event
-- ARGV[6] keep_s: seconds the replies are kept at most (SMSQ_REPLIES_TTL_S); '0': as long as
--   their message
--
-- Returns {outcome, mid?, phone?}: 'stored', 'duplicate' or 'unknown'.
local index = KEYS[1]
local metrics = KEYS[2]
local callback_events = KEYS[3]
local callback_due = KEYS[4]
local callback_wake = KEYS[5]
local sms_mo_id = ARGV[1]
local reply_json = ARGV[2]
local now_iso = ARGV[3]
local sms_id = ARGV[4]
local event_id = ARGV[5]
local keep_s = tonumber(ARGV[6] or '0') or 0
-- include: lib/callbacks.lua
-- include: lib/lookup.lua

local mid, phone, msg = lookup(index, sms_id, metrics, 'replies_unknown')
if not mid then return {'unknown'} end
local replies = '{{REPLIES_PREFIX}}' .. mid
local reply = cjson.decode(reply_json)
reply['received_at'] = now_iso
if redis.call('HSETNX', replies, sms_mo_id, cjson.encode(reply)) == 0 then
  redis.call('HINCRBY', metrics, 'replies_duplicate', 1)
  return {'duplicate', mid, phone}
end
local ttl = redis.call('TTL', msg)
if keep_s > 0 and (ttl <= 0 or keep_s < ttl) then ttl = keep_s end
if ttl > 0 then redis.call('EXPIRE', replies, ttl) end
redis.call('HINCRBY', metrics, 'replies_received', 1)
local m = redis.call('HMGET', msg, 'key', 'campaign_id', 'source', 'request', 'parent')
if m[3] == '{{SOURCE_GATEWAY}}' and m[4] then
  local ok, request = pcall(cjson.decode, m[4])
  local login = ok and type(request) == 'table' and request['producer']
  if type(login) == 'string' and login ~= '' then
    local pulls = '{{GATEWAY_PULLS_PREFIX}}' .. login
    local known = (m[5] and m[5] ~= '') and m[5] or mid
    redis.call('RPUSH', pulls, known .. ' ' .. sms_mo_id)
    redis.call('LTRIM', pulls, -{{GATEWAY_PULLS_MAX}}, -1)
    redis.call('EXPIRE', pulls, {{GATEWAY_PULLS_TTL_S}})
  end
end
local campaign = m[2]
if not campaign or campaign == '' then campaign = reply['campaign_id'] end
enqueue_callback(callback_events, callback_due, callback_wake, metrics, msg, {
  event = '{{EVENT_REPLY}}', event_id = event_id, key = m[1], message_id = mid,
  at = now_iso, phone = phone, sms_id = sms_id, sms_mo_id = sms_mo_id,
  message = reply['message'], reception_date = reply['reception_date'],
  campaign_id = (campaign ~= '' and campaign) or cjson.null})
return {'stored', mid, phone}
