-- enqueue_callback(events_key, due_key, wake_key, metrics_key, msg, event): add ``event`` for
-- the message hash ``msg`` to the callback outbox when its stored request has a callback_url;
-- returns 1 when added, 0 when the request has none. Uses the server clock, like every outbox
-- script. Relies on no local of the includer (the keys are arguments).
-- include: lib/now.lua
local function enqueue_callback(events_key, due_key, wake_key, metrics_key, msg, event)
  local raw = redis.call('HGET', msg, 'request')
  if not raw then return 0 end
  -- Most requests have no callback: skip decoding up to 500 recipients (a quote inside a JSON
  -- string is escaped, so only the key itself can match).
  if string.find(raw, '"callback_url": null', 1, true)
      or string.find(raw, '"callback_url":null', 1, true) then return 0 end
  local request = cjson.decode(raw)
  local url = request['callback_url']
  if type(url) ~= 'string' or url == '' then return 0 end
  local producer = request['producer']
  if type(producer) ~= 'string' then producer = '' end
  local now = redis_now()
  local parent = redis.call('HGET', msg, 'parent')
  if parent then event['part_of'] = parent end
  local envelope = cjson.encode({url = url, producer = producer, event = event, created = now})
  redis.call('HSET', events_key, event['event_id'], envelope)
  redis.call('ZADD', due_key, now, event['event_id'])
  redis.call('LPUSH', wake_key, '1')
  redis.call('LTRIM', wake_key, 0, {{WAKE_TOKENS_LAST}})
  redis.call('HINCRBY', metrics_key, 'callbacks_enqueued', 1)
  return 1
end
