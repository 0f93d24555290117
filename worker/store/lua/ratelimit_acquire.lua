-- Book a send's turn in the global rate limit (GCRA on Redis's clock) ahead of every lower
-- class, if its wait is short enough; a cost above the burst needs a full bucket and carries the
-- rest as debt.
--
-- Firm bookings move tat_key; nothing moves them later. Class 0 (urgent) always books firmly,
-- so it waits only behind firm bookings. A lower class books firmly only when its turn is now;
-- one that has to wait gets a provisional ticket in the queue (ordered by class, then arrival),
-- and its turn is computed after every firm booking and every ticket ahead of it. At that turn
-- its holder calls again with the ticket: if nothing of a higher class booked meanwhile, it
-- books firmly and goes; else it is told its new turn. A holder that does not call back within
-- grace_s of its turn (a dead worker) loses its ticket.
--
-- KEYS[1] tat_key: the theoretical arrival time of the firm bookings, Redis-TIME seconds
-- KEYS[2] state: the slowdown hash (effective rate)
-- KEYS[3] queue: sorted set of tickets '<arrival>:<cost>', scored class x 1e12 + arrival
-- KEYS[4] due: sorted set of the same tickets, scored by when their holder must call back
-- KEYS[5] arrivals: the arrival counter
-- ARGV[1] limit: the configured rate, segments per second
-- ARGV[2] burst: the bucket size, segments
-- ARGV[3] cost: this send's segments
-- ARGV[4] max_wait_s: the longest wait the caller accepts, seconds
-- ARGV[5] floor_fraction: the effective rate never drops below limit times this
-- ARGV[6] class: the send's priority class, 0 the highest
-- ARGV[7] ticket: '' for a new booking, else the ticket its holder was given
-- ARGV[8] grace_s: how long after its turn a ticket waits for its holder, seconds
--
-- Returns {booked 0/1, wait seconds, effective rate, Redis time, ticket ('' when firm)}.
local tat_key = KEYS[1]
local state = KEYS[2]
local queue = KEYS[3]
local due = KEYS[4]
local arrivals = KEYS[5]
local limit = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait_s = tonumber(ARGV[4])
local floor_fraction = tonumber(ARGV[5])
local class = tonumber(ARGV[6])
local ticket = ARGV[7]
local grace_s = tonumber(ARGV[8])
-- include: lib/now.lua

local CLASS_SPAN = 1000000000000

local function forget(members)
  for i = 1, #members, 500 do
    local last = math.min(i + 499, #members)
    redis.call('ZREM', queue, unpack(members, i, last))
    redis.call('ZREM', due, unpack(members, i, last))
  end
end

local now = redis_now()
local rate = tonumber(redis.call('HGET', state, 'rate')) or limit
local floor = limit * floor_fraction
if rate > limit then rate = limit end
if rate < floor then rate = floor end
local interval = 1 / rate
local stamp = string.format('%.6f', now)
local function answer(booked, wait, given)
  return {booked, string.format('%.6f', wait), string.format('%.6f', rate), stamp, given}
end

forget(redis.call('ZRANGEBYSCORE', due, '-inf', stamp))
local tat = tonumber(redis.call('GET', tat_key)) or now
if tat < now then tat = now end

-- The end of the schedule this send comes after: the firm bookings, then every ticket ahead.
local mine = nil
if ticket ~= '' then mine = redis.call('ZSCORE', queue, ticket) end
local ahead = {}
if mine then
  ahead = redis.call('ZRANGEBYSCORE', queue, '-inf', '(' .. mine)
elseif class > 0 then
  ahead = redis.call('ZRANGEBYSCORE', queue, '-inf',
                     '(' .. string.format('%d', (class + 1) * CLASS_SPAN))
end
local after = tat
for _, member in ipairs(ahead) do
  after = after + tonumber(string.match(member, ':(%d+)$')) * interval
end
local wait = after + (math.min(cost, burst) - burst) * interval - now
if wait < 0 then wait = 0 end

if wait > max_wait_s then
  if mine then forget({ticket}) end
  return answer(0, wait, '')
end
if class == 0 or wait == 0 then
  if mine then forget({ticket}) end
  local booked = tat + cost * interval
  redis.call('SET', tat_key, string.format('%.6f', booked),
             'PX', math.ceil((booked - now) * 1000) + 1000)
  return answer(1, wait, '')
end
if not mine then
  local arrival = redis.call('INCR', arrivals)
  ticket = arrival .. ':' .. string.format('%d', cost)
  redis.call('ZADD', queue, string.format('%d', class * CLASS_SPAN + arrival), ticket)
end
redis.call('ZADD', due, string.format('%.6f', now + wait + grace_s), ticket)
local last = redis.call('ZRANGE', due, -1, -1, 'WITHSCORES')
local keep_ms = math.ceil((tonumber(last[2]) - now) * 1000) + 1000
for _, key in ipairs({queue, due, arrivals}) do redis.call('PEXPIRE', key, keep_ms) end
return answer(1, wait, ticket)
