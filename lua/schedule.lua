--[[ schedule: create or change a schedule, pause, resume or remove it, or refill a cron's times
  The record (sch:<name>, lib/schedules) and its entry in the index schd change together. Fire
  times are computed by the caller (cron needs a cron library) and written with a compare-and-set:
  resume and refill name the cadence's generation (GEN, bumped when upsert changes the cadence),
  and refill also the pending tick it computed from, so a refill computed by two scheduler loops
  at once is written once, and one computed for an old cadence never.
  upsert: creates the schedule, or changes it; a change of cadence (cron, every, tz) starts again
    at the given pending tick (computed from now) with a new GEN; else the pending tick, the times,
    the pause, the last task and the counters stay. Wakes the scheduler loops.
  pause: out of the due index (+inf) until resume. resume: from now on, the ticks that fell due
    while paused dropped (neither fired nor counted); the buffered tick too. Wakes the loops.
  remove: the record and its index entry go (its tasks stay).
  refill: a cron whose listed times ran out (lua/fire.lua reported it) gets the pending tick and
    the times after it; the caller may pass over missed ticks at once (ARGV[8]): only ticks each
    followed by one due at least CATCHUP_MS ago, so the new pending tick must be that old.
  Includes: fields, util, replay, records
  KEYS[1..9] the fixed keys (see lib/util): uses wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] request id
  ARGV[4] op: upsert | pause | resume | remove | refill  ARGV[5] the schedule's name
  upsert: ARGV[6] task name  ARGV[7] args (JSON)  ARGV[8] queue  ARGV[9] max_attempts
    ARGV[10] timeout_ms  ARGV[11] backoff_ms  ARGV[12] policy (luasched/core/options.py policy_field)
    ARGV[13] expires_ms  ARGV[14] spec (as a person reads it)  ARGV[15] cron ('' = an interval)
    ARGV[16] every_ms ('' = a cron)  ARGV[17] tz  ARGV[18] overlap  ARGV[19] catchup_ms
    ARGV[20] next_ms (the pending tick from now)  ARGV[21] times (the cron's next times, comma-joined;
    'end': it never fires after the pending tick, which fires as its last, and it retires)
  resume: after the name, gen, next_ms, times (ARGV 6 to 8)
  refill: after the name, gen, cursor (the pending tick it computed from), missed, next_ms, times
    (ARGV 6 to 10)
  Returns {'created'} | {'updated'} (upsert); {'ok'} | {'unchanged'} (pause, resume: already so);
          {'unknown'} (no such schedule); {'stale'} (resume, refill: the record moved on)
  Invariant: a schedule has a record exactly while the index holds it, at its pending tick (or
  +inf while paused).
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
local rid, op, name = ARGV[3], ARGV[4], ARGV[5]
local sizes = {upsert = 21, pause = 5, resume = 8, remove = 5, refill = 10}
if not now or rid == '' or name == '' or not sizes[op] or #ARGV ~= sizes[op] then
  return redis.error_reply('ERR luasched schedule: bad now_ms, request id, name, op or number of ARGV')
end
local function times_ok(t)
  return t == '' or t == 'end' or string.match(t, '^%d+$') ~= nil or string.match(t, '^%d+[%d,]*%d$') ~= nil
end
if op == 'upsert' then
  if not policy_parts(ARGV[12]) then
    return redis.error_reply('ERR luasched schedule: the policy is not "<0..9>\\n<limits>\\n<requires>\\n<key>"')
  end
  for _, i in ipairs({9, 10, 11, 13, 19, 20}) do
    if not tonumber(ARGV[i]) then
      return redis.error_reply('ERR luasched schedule: ARGV[' .. i .. '] is not a number')
    end
  end
  local ov = ARGV[18]
  if ARGV[6] == '' or ARGV[8] == '' or (ARGV[15] == '') == (ARGV[16] == '') or not times_ok(ARGV[21])
    or (ov ~= 'skip' and ov ~= 'allow' and ov ~= 'buffer_one') then
    return redis.error_reply('ERR luasched schedule: bad task name, queue, cadence, times or overlap')
  end
elseif op == 'resume' or op == 'refill' then
  local n = op == 'resume' and 7 or 9
  if not tonumber(ARGV[n]) or not times_ok(ARGV[n + 1]) or (op == 'refill' and not tonumber(ARGV[8])) then
    return redis.error_reply('ERR luasched schedule: bad next_ms, missed or times')
  end
end
local seen = replayed(C, rid)
if seen then
  return seen
end
local sk, idx = P .. 'sch:' .. name, P .. 'schd'

if op == 'upsert' then
  local cron, every, tz, gen, paused = unpack(redis.call('HMGET', sk, SCHED_CRON, SCHED_EVERY_MS, SCHED_TZ, SCHED_GEN,
    SCHED_PAUSED))
  local same = gen and (cron or '') == ARGV[15] and (every or '') == ARGV[16] and tz == ARGV[17]
  redis.call('HSET', sk, SCHED_TASK_NAME, ARGV[6], SCHED_ARGS, ARGV[7], SCHED_QUEUE, ARGV[8], SCHED_MAX_ATTEMPTS,
    ARGV[9], SCHED_TIMEOUT_MS, ARGV[10], SCHED_BACKOFF_MS, ARGV[11], SCHED_POLICY, ARGV[12], SCHED_EXPIRES_MS, ARGV[13],
    SCHED_SPEC, ARGV[14], SCHED_TZ, ARGV[17], SCHED_OVERLAP, ARGV[18], SCHED_CATCHUP_MS, ARGV[19],
    SCHED_UPDATED_MS, fmt(now))
  if ARGV[15] ~= '' then
    redis.call('HSET', sk, SCHED_CRON, ARGV[15])
    redis.call('HDEL', sk, SCHED_EVERY_MS)
  else
    redis.call('HSET', sk, SCHED_EVERY_MS, ARGV[16])
    redis.call('HDEL', sk, SCHED_CRON)
  end
  if ARGV[18] ~= 'buffer_one' then
    redis.call('HDEL', sk, SCHED_BUFFERED_MS)
  end
  if not same then
    redis.call('HSET', sk, SCHED_NEXT_MS, ARGV[20], SCHED_TIMES, ARGV[21], SCHED_GEN, fmt(tonumber(gen or '0') + 1))
    redis.call('ZADD', idx, paused and '+inf' or ARGV[20], name)
  end
  wake_scheduler(C)
  return remember(C, rid, {gen and 'updated' or 'created'}, true)
end

local gen, nxt, times, paused, catchup = unpack(redis.call('HMGET', sk, SCHED_GEN, SCHED_NEXT_MS, SCHED_TIMES,
  SCHED_PAUSED, SCHED_CATCHUP_MS))
if not gen then
  return {'unknown'}
end
if op == 'remove' then
  redis.call('DEL', sk)
  redis.call('ZREM', idx, name)
  return remember(C, rid, {'ok'}, true)
elseif op == 'pause' then
  if paused then
    return {'unchanged'}
  end
  redis.call('HSET', sk, SCHED_PAUSED, '1')
  redis.call('ZADD', idx, '+inf', name)
  return remember(C, rid, {'ok'}, true)
elseif op == 'resume' then
  if not paused then
    return {'unchanged'}
  end
  if ARGV[6] ~= gen then
    return {'stale'}
  end
  redis.call('HDEL', sk, SCHED_PAUSED, SCHED_BUFFERED_MS)
  redis.call('HSET', sk, SCHED_NEXT_MS, ARGV[7], SCHED_TIMES, ARGV[8])
  redis.call('ZADD', idx, ARGV[7], name)
  wake_scheduler(C)
  return remember(C, rid, {'ok'}, true)
end
-- refill
local missed = tonumber(ARGV[8])
if ARGV[6] ~= gen or ARGV[7] ~= nxt or (times or '') ~= '' or tonumber(ARGV[9]) < tonumber(nxt)
  or (missed > 0 and tonumber(ARGV[9]) > now - tonumber(catchup or '0')) then
  return {'stale'}
end
redis.call('HSET', sk, SCHED_NEXT_MS, ARGV[9], SCHED_TIMES, ARGV[10])
if missed > 0 then
  redis.call('HINCRBY', sk, SCHED_MISSED, missed)
end
if not paused then
  redis.call('ZADD', idx, ARGV[9], name)
end
return remember(C, rid, {'ok'}, true)
