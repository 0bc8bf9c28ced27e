--[[ lib/schedules: what the scripts of schedules share: a schedule's record, whether its last
  task has finished, and the task one of its ticks makes (as submit makes a task: the same record,
  queue, lane, deadline, routing and counters; never dispatched here: the loop that fires it
  dispatches right after).
  Includes: fields, util, lanes, routing, records

  Keys (luasched/core/keys.py):
    sch:<name>  HASH  schedule <name>, SCHED_* (luasched/core/fields.py Schedule): the task it
                      makes (TASK_NAME, ARGS and the submit fields of its options), its cadence
                      (CRON and TZ, or EVERY_MS), OVERLAP, CATCHUP_MS, NEXT_MS (its pending tick),
                      TIMES (a cron's following fire times, ascending, comma-joined), GEN, PAUSED,
                      LAST_TASK, BUFFERED_MS, and the counters RUNS SKIPPED MISSED
    schd        ZSET  schedule name -> its pending tick's ms (+inf while paused): the index of
                      the schedules, and what scheduler loops wait for
  A tick's task has the id <name>@<fire ms> and names its schedule in TASK_SCHEDULE.
]]

-- The record of schedule key sk as a table (empty when there is none).
local function schedule_record(sk)
  local flat = redis.call('HGETALL', sk)
  local r = {}
  for i = 1, #flat, 2 do
    r[flat[i]] = flat[i + 1]
  end
  return r
end

-- Whether task id exists and has not finished (an expired record has finished).
local function unfinished(P, id)
  local s = id and redis.call('HGET', P .. 't:' .. id, TASK_STATE)
  return s ~= false and s ~= nil and s ~= 'done' and s ~= 'failed' and s ~= 'cancelled'
end

-- Create task id of schedule sn (record r), queued as submit queues it. Returns nil when it was
-- created, 'exists' when a task of that id exists already, or why it was refused (a limiter that
-- no longer exists, a full queue): then nothing was written.
local function schedule_task(C, r, id, sn)
  local P, now = C.prefix, C.now
  local tk = P .. 't:' .. id
  if redis.call('EXISTS', tk) == 1 then
    return 'exists'
  end
  local name, queue = r[SCHED_TASK_NAME], r[SCHED_QUEUE]
  local pr, lm, rq, key = policy_parts(r[SCHED_POLICY] or '') -- checked by the upsert that stored it
  if lm ~= '' then
    local lc = policy(C, nil)
    for n in string.gmatch(lm, '[^,]+') do
      if not limiter(lc, n) then
        return "no limiter named '" .. n .. "'"
      end
    end
  end
  local cap = tonumber(redis.call('HGET', P .. 'qmax', queue) or '')
  if cap then
    if pending_depth(P, queue) + 1 > cap then
      return "queue '" .. queue .. "' is full"
    end
  end
  local f = {TASK_NAME, name, TASK_ARGS, r[SCHED_ARGS], TASK_CREATED_MS, fmt(now), TASK_STATE, 'queued',
             TASK_SCHEDULE, sn}
  optional_fields(f, queue, r[SCHED_MAX_ATTEMPTS], r[SCHED_BACKOFF_MS], r[SCHED_TIMEOUT_MS], pr, key, lm, rq)
  local expires = tonumber(r[SCHED_EXPIRES_MS] or '0')
  if expires > 0 then
    f[#f + 1], f[#f + 2] = TASK_EXPIRES_MS, fmt(now + expires)
    redis.call('ZADD', P .. 'exp', fmt(now + expires), id)
  end
  redis.call('HSET', tk, unpack(f))
  if redis.call('SADD', P .. 'qn:' .. queue, name) == 1 then
    route_flag(P, queue)
  end
  redis.call('SADD', C.queues, queue)
  local plain = pr == '5' and key == '' and lm == '' and rq == ''
  if plain and redis.call('EXISTS', P .. 'lanes:' .. queue) == 0 then
    redis.call('RPUSH', P .. 'q:' .. queue, id)
  else
    enqueue(C, id, queue, pr, key ~= '' and key or nil, (lm ~= '' and lm) or (rq ~= '' and '') or nil, false)
  end
  redis.call('HINCRBY', C.stats, STAT_SUBMITTED, 1)
  wake_scheduler(C)
  return nil
end
