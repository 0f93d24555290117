-- Move up to a number of job ids from the lanes (in priority order, paused lanes skipped) into
-- each lane's intermediate list, with what the worker needs to run them.
--
-- KEYS[1..] queues: the lanes' RQ queue keys, in priority order
-- ARGV[1] paused: the pause hash (lane or '*' -> why)
-- ARGV[2] want: most jobs to take
-- ARGV[3..] lanes: the lane name of each queue key, in the same order
--
-- Returns {lane index, job id, data, plain} per job, where plain is 1 when the job hash has no
-- callback or webhook fields.
local queues = KEYS
local paused = ARGV[1]
local want = tonumber(ARGV[2])
local lanes = {unpack(ARGV, 3)}

if redis.call('HEXISTS', paused, '*') == 1 then return {} end
local out = {}
for i, queue in ipairs(queues) do
  if #out >= want then break end
  if redis.call('HEXISTS', paused, lanes[i]) == 0 then
    while #out < want do
      local jid = redis.call('LMOVE', queue, queue .. ':intermediate', 'LEFT', 'RIGHT')
      if not jid then break end
      local f = redis.call('HMGET', '{{RQ_JOB_PREFIX}}' .. jid, 'data', 'success_callback_name',
        'failure_callback_name', 'stopped_callback_name', 'webhooks')
      local plain = 1
      for j = 2, 5 do if f[j] and f[j] ~= '' then plain = 0 end end
      out[#out + 1] = {i, jid, f[1] or '', plain}
    end
  end
end
return out
