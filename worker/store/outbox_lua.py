"""The Lua fragment every script that reports an event shares: ``enqueue_callback`` and
``final_event`` (the ledger's final transitions, the receipts' and replies' scripts)."""

from __future__ import annotations

from producers.contract import EVENT_FINAL
from producers.keys import WAKE_TOKENS_MAX


# Lua helpers shared by the ledger's and the receipts' scripts. ``enqueue_callback`` adds an
# event for the message hash ``msg`` when its stored request has a callback_url; the callback
# keys are passed as KEYS by the caller. Uses the server clock, like every outbox script.
ENQUEUE_LUA = """
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
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
  redis.call('LTRIM', wake_key, 0, """ + str(WAKE_TOKENS_MAX - 1) + """)
  redis.call('HINCRBY', metrics_key, 'callbacks_enqueued', 1)
  return 1
end
local function final_event(msg, state, at, event_id)
  local f = redis.call('HMGET', msg, 'key', 'message_id', 'provider_status', 'campaign_id',
    'sms_ids', 'invalid_numbers')
  -- Lists and maps stay JSON text here (Redis's cjson cannot tell [] from {}); the dispatcher
  -- decodes them (see decode_event).
  return {event = '""" + EVENT_FINAL + """', event_id = event_id, key = f[1],
    message_id = f[2], state = state, at = at,
    provider_status = tonumber(f[3] or '') or cjson.null,
    campaign_id = (f[4] and f[4] ~= '' and f[4]) or cjson.null,
    sms_ids = f[5] or '{}', invalid_numbers = f[6] or '[]'}
end
"""

