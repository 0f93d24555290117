-- final_event(msg, state, at, event_id): the final-state callback event of the message hash
-- ``msg``. Relies on no local of the includer.
local function final_event(msg, state, at, event_id)
  local f = redis.call('HMGET', msg, 'key', 'message_id', 'provider_status', 'campaign_id',
    'sms_ids', 'invalid_numbers')
  -- Lists and maps stay JSON text here (Redis's cjson cannot tell [] from {}); the dispatcher
  -- decodes them (see decode_event).
  return {event = '{{EVENT_FINAL}}', event_id = event_id, key = f[1],
    message_id = f[2], state = state, at = at,
    provider_status = tonumber(f[3] or '') or cjson.null,
    campaign_id = (f[4] and f[4] ~= '' and f[4]) or cjson.null,
    sms_ids = f[5] or '{}', invalid_numbers = f[6] or '[]'}
end
