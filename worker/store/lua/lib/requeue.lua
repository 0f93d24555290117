-- requeue(): put the message back on its lane as a fresh RQ job (id
-- <job id prefix><message id>-r<n>, the form producers/keys.py requeued_job_id and
-- JOB_ID_PATTERN describe) if its state is allowed, and drop its dead letter.
-- Returns {'queued', job id}, {'missing'} or {current state}.
-- Relies on the includer's locals: message, history, dead_set, dead_letter, sending, metrics,
-- wake (keys); allowed_json, now_iso, ttl, reason, actor, front, job_json (arguments).
local function requeue()
  local state = redis.call('HGET', message, 'state')
  if not state then return {'missing'} end
  local allowed = false
  for _, s in ipairs(cjson.decode(allowed_json)) do if s == state then allowed = true end end
  if not allowed then return {state} end
  local mid = redis.call('HGET', message, 'message_id')
  local queue = '{{LANE_QUEUE_PREFIX}}' .. redis.call('HGET', message, 'lane')
  local jid = '{{JOB_ID_PREFIX}}' .. mid .. '-r' .. redis.call('HINCRBY', message, 'requeues', 1)
  local job = cjson.decode(job_json)
  job['origin'] = queue
  for field, value in pairs(job) do redis.call('HSET', '{{RQ_JOB_PREFIX}}' .. jid, field, value) end
  if front == '1' then
    redis.call('LPUSH', '{{RQ_QUEUE_PREFIX}}' .. queue, jid)
  else
    redis.call('RPUSH', '{{RQ_QUEUE_PREFIX}}' .. queue, jid)
  end
  redis.call('HSET', message, 'state', 'queued', 'job_id', jid, 'updated_at', now_iso)
  redis.call('HDEL', message, 'awaiting_turn')
  if state ~= 'queued' and state ~= 'sending' then
    -- An operator's requeue of a dead letter: a fresh later-retry window, not the spent one.
    redis.call('HDEL', message, 'later_rounds', 'later_since', 'next_attempt_at', 'held_for')
  end
  redis.call('EXPIRE', message, ttl)
  redis.call('RPUSH', history, cjson.encode({state = 'queued', at = now_iso, reason = reason,
    by = actor, from = state}))
  redis.call('EXPIRE', history, ttl)
  redis.call('ZREM', sending, mid)
  redis.call('DEL', dead_letter)
  redis.call('ZREM', dead_set, mid)
  redis.call('HINCRBY', metrics, 'requeued', 1)
  redis.call('LPUSH', wake, '1')
  redis.call('LTRIM', wake, 0, {{WAKE_TOKENS_LAST}})
  return {'queued', jid}
end
