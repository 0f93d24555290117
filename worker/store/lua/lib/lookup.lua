-- lookup(index, sms_id, metrics_key, counter): the message id of an smsId, the phone it was
-- sent to (from the message's own sms_ids: a number purged since is not found) and the
-- message hash; nil (and ``counter`` counted) for an unknown smsId (another system's, expired
-- or purged).
-- Relies on no local of the includer.
local function lookup(index, sms_id, metrics_key, counter)
  local mid = redis.call('GET', index)
  local raw = mid and redis.call('HGET', '{{MESSAGE_PREFIX}}' .. mid, 'sms_ids')
  if raw and raw ~= '' then
    for phone, id in pairs(cjson.decode(raw)) do
      if id == sms_id then return mid, phone, '{{MESSAGE_PREFIX}}' .. mid end
    end
  end
  redis.call('HINCRBY', metrics_key, counter, 1)
  return nil
end
