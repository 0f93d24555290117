-- apply(msg, hist, dead_set, dead_key, new_state, fields, entry, dead, now, ttl, event_id): write
-- a ledger state change (fields, history entry, sending set, counters, dead letter). A message
-- reaching a terminal state also indexes its smsIds (for delivery receipts and replies) and,
-- when its request has a callback_url, adds a final event to the callback outbox, in the same
-- script, so neither can be missed. A sent or partial message with a campaignId is indexed by
-- it and added to the messages awaiting receipts (the polling fallback's list).
-- Relies on the includer's locals: sending (the sending set), metrics (the counters hash),
-- callback_events, callback_due and callback_wake (the callback outbox keys).
-- include: lib/callbacks.lua
-- include: lib/final_event.lua
local TERMINAL = cjson.decode('{{TERMINAL_STATES_JSON}}')
local function index_sms_ids(raw, mid, ttl)
  if not raw or raw == '' then return end
  for _, sms_id in pairs(cjson.decode(raw)) do
    redis.call('SET', '{{SMS_ID_PREFIX}}' .. sms_id, mid, 'EX', ttl)
  end
end
local function index_campaign(campaign_id, new_state, mid, now, ttl)
  if not campaign_id or campaign_id == '' then return end
  redis.call('SET', '{{CAMPAIGN_PREFIX}}' .. campaign_id, mid, 'EX', ttl)
  if new_state == 'sent' or new_state == 'partial' then
    redis.call('ZADD', '{{AWAITING_RECEIPTS}}', now, mid)
  end
end
local function apply(msg, hist, dead_set, dead_key, new_state, fields, entry, dead, now, ttl,
                     event_id)
  redis.call('HSET', msg, 'state', new_state)
  redis.call('HDEL', msg, 'awaiting_turn')
  local mid = redis.call('HGET', msg, 'message_id')
  if new_state == 'sending' then
    redis.call('ZADD', sending, now, mid)
  else
    redis.call('ZREM', sending, mid)
  end
  for field, value in pairs(fields) do redis.call('HSET', msg, field, tostring(value)) end
  redis.call('EXPIRE', msg, ttl)
  redis.call('RPUSH', hist, entry)
  redis.call('EXPIRE', hist, ttl)
  redis.call('HINCRBY', metrics, 'state:' .. new_state, 1)
  if not dead then
    -- A message that leaves a dead-letter state for a good one is no longer a dead letter.
    redis.call('DEL', dead_key)
    redis.call('ZREM', dead_set, mid)
  end
  if dead then
    for field, value in pairs(dead) do redis.call('HSET', dead_key, field, tostring(value)) end
    redis.call('EXPIRE', dead_key, ttl)
    redis.call('ZADD', dead_set, now, dead['dead_id'])
    redis.call('HINCRBY', metrics, 'dead_letters', 1)
  end
  if TERMINAL[new_state] then
    -- The key's tombstone (if remembered: SMSQ_KEY_MEMORY_S) says what it ended as.
    redis.call('SET', '{{TOMBSTONE_PREFIX}}' .. mid, new_state, 'XX', 'KEEPTTL')
    index_sms_ids(fields['sms_ids'], mid, ttl)
    index_campaign(fields['campaign_id'], new_state, mid, now, ttl)
    enqueue_callback(callback_events, callback_due, callback_wake, metrics, msg,
      final_event(msg, new_state, fields['updated_at'], event_id))
  end
end
