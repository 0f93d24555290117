-- Drop a job whose send is over: out of its lane's intermediate list, its hash deleted. Unless
-- its message, here, is still queued with this job as its own and no later round waiting: then
-- the answer that ended the send came from another server (a demoted primary, during a Sentinel
-- failover), the message still needs this job, and the job goes back to the front of its lane.
-- Returns 1 when the job was dropped, 0 when it was put back (or left to whoever holds it).
--
-- KEYS[1] intermediate: the lane's intermediate list
-- KEYS[2] job: the RQ job hash
-- KEYS[3] queue: the lane's queue
-- KEYS[4] message: the message hash (a key that does not exist for a job smsq did not write)
-- KEYS[5] later: the sorted set of messages waiting for a later round
-- ARGV[1] job_id: the job's id
-- ARGV[2] message_id: its message's id ('' for a job smsq did not write)
local intermediate = KEYS[1]
local job = KEYS[2]
local queue = KEYS[3]
local message = KEYS[4]
local later = KEYS[5]
local job_id = ARGV[1]
local message_id = ARGV[2]

local removed = redis.call('LREM', intermediate, 1, job_id)
if message_id ~= '' and redis.call('HGET', message, 'state') == 'queued'
    and redis.call('HGET', message, 'job_id') == job_id
    and not redis.call('ZSCORE', later, message_id) then
  if removed > 0 then
    redis.call('LPUSH', queue, job_id)
  end
  return 0
end
redis.call('DEL', job)
return 1
