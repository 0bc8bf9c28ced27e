--[[ fire: the due ticks of the schedules -> one task each (or skipped, buffered, missed); or a trigger
  Every schedule's record holds its pending tick (NEXT_MS, its score in schd) and, for a cron, the
  fire times after it (TIMES, computed ahead by the caller, written by lua/schedule.lua refill).
  This script claims each due pending tick, decides it, and moves the record to the next time, in
  one atomic step by the server's clock: so a tick is decided exactly once, however many scheduler
  loops call it and whatever their clocks say, and its task has the id <name>@<fire ms>.
  A pending tick t, due at now (t <= now), with its successor s:
    - fires when it is due less than CATCHUP_MS ago, or when it is the newest due tick (s > now)
      and due less than the grace (ARGV[7]) ago; else it is missed (counted, never fired). An
      interval's missed ticks are counted at once; a cron's one by one (its listed times).
    - a firing tick meets its schedule's last task: when that has not finished, overlap 'skip'
      counts the tick skipped; 'buffer_one' keeps it as the one buffered tick (BUFFERED_MS) if
      none is, else counts it skipped; 'allow' fires it anyway. A buffered tick fires (id
      <name>@<its own ms>) as soon as a call finds the last task finished: lib/lifecycle's finish
      makes its schedule due the moment that task ends.
  A cron whose listed times ran out stops at its pending tick and is reported for a refill.
  With a name (ARGV[5]), triggers that schedule instead: one task of id ARGV[6] now, outside the
  cadence, whatever its overlap and pause; it becomes the schedule's last task.
  Includes: fields, util, replay, schedules
  KEYS[1..9] the fixed keys (see lib/util): uses stats queues wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] limit (ticks decided per call, 1..10000)
  ARGV[4] request id  ARGV[5] name ('' = every due schedule; else trigger it)  ARGV[6] task id (trigger)
  ARGV[7] grace_ms (how late the newest due tick still fires)
  Returns due: {now, next due ms over all schedules ('' = none), {task ids created},
           {name, gen, pending ms, cron, tz, catchup_ms ...} (the crons to refill), more 0|1}
          trigger: {'ok'} | {'exists'} | {'unknown'} | {'refused', why}
  Invariant: each tick of a schedule is decided once: fired (one task), buffered, skipped or missed.
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
C.now = now
local limit, rid, name, tid, grace = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
if not now or not limit or limit < 1 or limit > 10000 or rid == '' or not grace then
  return redis.error_reply('ERR luasched fire: bad now_ms, limit, request id or grace_ms')
end
if name ~= '' and tid == '' then
  return redis.error_reply('ERR luasched fire: a trigger needs a task id')
end
local seen = replayed(C, rid)
if seen then
  return seen
end
local idx = P .. 'schd'

if name ~= '' then
  local sk = P .. 'sch:' .. name
  local r = schedule_record(sk)
  if not r[SCHED_NEXT_MS] then
    return {'unknown'}
  end
  local why = schedule_task(C, r, tid, name)
  if why and why ~= 'exists' then
    return {'refused', why}
  end
  if not why then
    redis.call('HSET', sk, SCHED_LAST_TASK, tid)
    redis.call('HINCRBY', sk, SCHED_RUNS, 1)
  end
  return remember(C, rid, {why or 'ok'}, not why)
end

local created, refills = {}, {}
local budget = limit

-- Decide schedule sn's due ticks (record r), each taken from the budget of this call.
local function fire_one(sn, r)
  local sk = P .. 'sch:' .. sn
  if r[SCHED_PAUSED] then
    redis.call('ZADD', idx, '+inf', sn)
    return
  end
  local nxt = tonumber(r[SCHED_NEXT_MS])
  local every = tonumber(r[SCHED_EVERY_MS] or '')
  local catchup = tonumber(r[SCHED_CATCHUP_MS] or '0')
  local overlap = r[SCHED_OVERLAP]
  local times = r[SCHED_TIMES] or ''
  local last = r[SCHED_LAST_TASK]
  local buffered = tonumber(r[SCHED_BUFFERED_MS] or '')
  local busy = last ~= nil and unfinished(P, last)
  local runs, skipped, missed = 0, 0, 0
  local function make(t)
    local id = sn .. '@' .. fmt(t)
    local why = schedule_task(C, r, id, sn)
    if why and why ~= 'exists' then
      skipped = skipped + 1
      return
    end
    if not why then
      runs = runs + 1
      created[#created + 1] = id
    end
    last, busy = id, true
  end
  if buffered and not busy then -- the task before it finished: the buffered tick goes now
    buffered = nil
    make(tonumber(r[SCHED_BUFFERED_MS]))
  end
  if every and nxt <= now - catchup then -- the ticks missed for sure, counted at once
    local k = math.floor((now - catchup - nxt) / every) + 1
    local newest = nxt + math.floor((now - nxt) / every) * every
    if nxt + (k - 1) * every == newest and now - newest < grace then
      k = k - 1
    end
    missed = missed + k
    nxt = nxt + k * every
    budget = budget - 1
  end
  local refill = false
  while nxt <= now and budget > 0 do
    local succ, rest
    if every then
      succ = nxt + every
    elseif times == 'end' then -- its last tick: the schedule retires after it, due never
      succ, rest = math.huge, 'end'
    else
      local head, tail = string.match(times, '^(%d+),?(.*)$')
      succ, rest = tonumber(head), tail
    end
    if not succ then
      refill = true
      break
    end
    budget = budget - 1
    local age = now - nxt
    if age >= catchup and not (succ > now and age < grace) then
      missed = missed + 1
    elseif busy and overlap == 'skip' then
      skipped = skipped + 1
    elseif busy and overlap == 'buffer_one' then
      if buffered then
        skipped = skipped + 1
      else
        buffered = nxt
      end
    else
      make(nxt)
    end
    nxt = succ
    if rest then
      times = rest
    end
  end
  if nxt <= now and not every and times == '' then
    refill = true
  end
  if refill then
    local rf = {sn, r[SCHED_GEN], fmt(nxt), r[SCHED_CRON], r[SCHED_TZ], fmt(catchup)}
    for _, v in ipairs(rf) do
      refills[#refills + 1] = v
    end
  end
  redis.call('HSET', sk, SCHED_NEXT_MS, fmt(nxt), SCHED_TIMES, times)
  if last then
    redis.call('HSET', sk, SCHED_LAST_TASK, last)
  end
  if buffered then
    redis.call('HSET', sk, SCHED_BUFFERED_MS, fmt(buffered))
  else
    redis.call('HDEL', sk, SCHED_BUFFERED_MS)
  end
  for field, n in pairs({[SCHED_RUNS] = runs, [SCHED_SKIPPED] = skipped, [SCHED_MISSED] = missed}) do
    if n > 0 then
      redis.call('HINCRBY', sk, field, n)
    end
  end
  redis.call('ZADD', idx, fmt(nxt), sn)
end

local due = redis.call('ZRANGEBYSCORE', idx, '-inf', fmt(now), 'LIMIT', 0, limit)
for _, sn in ipairs(due) do
  if budget <= 0 then
    break
  end
  local r = schedule_record(P .. 'sch:' .. sn)
  if r[SCHED_NEXT_MS] then
    fire_one(sn, r)
  else
    redis.call('ZREM', idx, sn) -- an index entry of no schedule: nothing to fire
  end
end
local head = redis.call('ZRANGEBYSCORE', idx, '-inf', '(+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local reply = {fmt(now), head[2] or '', created, refills, budget <= 0 and '1' or '0'}
return remember(C, rid, reply, #created > 0)
