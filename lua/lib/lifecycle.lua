--[[ lib/lifecycle: a task's moves between the places it can be (queued, delayed, running, finished).
  Starting, finishing, retrying and giving back tasks; also a processor leaving (drain), since
  what that does is give its tasks back. Never places a task on a processor: that is
  lib/placement, which includes this library (its own processor starts what it places at once).
  Includes: fields, util, processors, lanes, routing, unique, metrics
]]
-- The timeout of an attempt, ms: the task's own (its record's TASK_TIMEOUT_MS o, nil when it has
-- none), else the default of the processor running it (dto: its record's
-- PROC_DEFAULT_TIMEOUT_MS, nil when none); '0' for none.
local function attempt_timeout(o, dto)
  if o and tonumber(o) > 0 then
    return o
  end
  return dto or '0'
end

-- Any state -> done | failed | cancelled; field/payload (TASK_RESULT or TASK_ERROR) may be nil.
-- The stats, the rate bucket and the group count it in the field named by the state.
-- known: {w, g, c, sc, u} read from the record already (waiter flag, group, children flag,
-- schedule, unique key held until it finishes: the caller knows it started, so it holds none
-- until it starts), or nil to read them here. A unique key the task holds is freed (lib/unique).
-- Appends to follow what now may release waiting tasks, {ref, bad}: ref 't:<id>' when tasks wait
-- for it, 'g:<gid>' when it was the last of a group tasks wait for; bad: it (or a member of the
-- group) ended other than done.
local function finish_one(C, id, state, field, payload, known, follow)
  local P, now, keep_s = C.prefix, C.now, C.keep_s
  local tk = P .. 't:' .. id
  if field then
    redis.call('HSET', tk, TASK_STATE, state, TASK_FINISHED_MS, fmt(now), field, payload)
  else
    redis.call('HSET', tk, TASK_STATE, state, TASK_FINISHED_MS, fmt(now))
  end
  redis.call('HDEL', tk, TASK_PROCESSOR)
  redis.call('HINCRBY', C.stats, state, 1)
  local bucket = P .. 'rate:' .. fmt(math.floor(now / 10000))
  if redis.call('HINCRBY', bucket, state, 1) == 1 then
    redis.call('EXPIRE', bucket, 120)
  end
  if state == 'failed' then
    redis.call('ZADD', C.failed, fmt(now), id)
  else
    redis.call('EXPIRE', tk, keep_s)
  end
  local w, g, c, sc, u, us
  if known then
    w, g, c, sc, u = known[1], known[2], known[3], known[4], known[5]
  else
    w, g, c, sc, u, us = unpack(redis.call('HMGET', tk, TASK_WAITER, TASK_GROUP, TASK_CHILDREN, TASK_SCHEDULE,
      TASK_UNIQUE, TASK_UNIQUE_STARTED))
  end
  if u then
    unique_free(C, id, u, TASK_UNIQUE)
  end
  if us then
    unique_free(C, id, us, TASK_UNIQUE_STARTED)
  end
  if sc then -- a tick of its schedule waits behind it (overlap buffer_one): make the schedule due now
    local sk = P .. 'sch:' .. sc
    local b, last, paused, nxt = unpack(redis.call('HMGET', sk, SCHED_BUFFERED_MS, SCHED_LAST_TASK, SCHED_PAUSED,
      SCHED_NEXT_MS))
    if b and last == id and not paused then
      redis.call('ZADD', P .. 'schd', fmt(math.min(now, tonumber(nxt))), sc)
      wake_scheduler(C)
    end
  end
  if w then
    local wk = P .. 'w:' .. id
    redis.call('RPUSH', wk, '1')
    redis.call('EXPIRE', wk, 300)
  end
  if c then
    follow[#follow + 1] = {'t:' .. id, state ~= 'done'}
  end
  if g then
    local gk = P .. 'g:' .. g
    if redis.call('EXISTS', gk) == 1 then
      redis.call('HINCRBY', gk, state, 1)
      redis.call('XADD', P .. 'gs:' .. g, '*', EVENT_TASK, id, EVENT_STATE, state)
      local n, d, f, x, then_ = unpack(redis.call('HMGET', gk, GROUP_TOTAL, GROUP_DONE, GROUP_FAILED,
        GROUP_CANCELLED, GROUP_CHILDREN))
      if then_ and state ~= 'failed' then
        redis.call('PERSIST', tk) -- its result waits for the tasks that wait for the group
      end
      -- a group made before its total had a name of its own counts its member list (the same number)
      n = tonumber(n) or redis.call('LLEN', P .. 'gi:' .. g)
      if (tonumber(d) or 0) + (tonumber(f) or 0) + (tonumber(x) or 0) >= n then
        redis.call('EXPIRE', gk, keep_s)
        redis.call('EXPIRE', P .. 'gs:' .. g, keep_s)
        redis.call('EXPIRE', P .. 'gi:' .. g, keep_s)
        if then_ then
          follow[#follow + 1] = {'g:' .. g, (tonumber(f) or 0) + (tonumber(x) or 0) > 0}
        end
      end
    end
  end
end

-- The list of the tasks waiting for ref ('t:<id>' or 'g:<gid>'): tc:<id> or gc:<gid>.
local function children_key(P, ref)
  return P .. string.sub(ref, 1, 1) .. 'c:' .. string.sub(ref, 3)
end

-- Whether ref has finished, and whether it ended other than done (a task failed or cancelled; a
-- group with a member that did). Unknown: finished, and not done.
local function parent_end(P, ref)
  if string.sub(ref, 1, 2) == 't:' then
    local s = redis.call('HGET', P .. ref, TASK_STATE)
    if s == 'done' then
      return true, false
    end
    if not s then -- its record is gone (expired after keep, or purged): Redis answers false, not nil
      return true, true
    end
    return s == 'failed' or s == 'cancelled', true
  end
  local n, d, f, x = unpack(redis.call('HMGET', P .. ref, GROUP_TOTAL, GROUP_DONE, GROUP_FAILED, GROUP_CANCELLED))
  n = tonumber(n) or redis.call('LLEN', P .. 'gi:' .. string.sub(ref, 3))
  local bad = (tonumber(f) or 0) + (tonumber(x) or 0)
  return (tonumber(d) or 0) + bad >= n, bad > 0
end

-- What one finished task gives a task that waits for it: its result JSON when done; else
-- {"error": message, "type": type} (a cancelled task: TaskCancelled).
local function fed_value(P, id)
  local s, r, e = unpack(redis.call('HMGET', P .. 't:' .. id, TASK_STATE, TASK_RESULT, TASK_ERROR))
  if s == 'done' then
    return r or 'null', s
  end
  local err = {type = s == 'cancelled' and 'TaskCancelled' or 'TaskFailed', message = s or 'gone'}
  if e then
    local ok, decoded = pcall(cjson.decode, e)
    if ok and type(decoded) == 'table' then
      err = decoded
    end
  end
  return cjson.encode({error = tostring(err.message or ''), type = tostring(err.type or 'TaskFailed')}), s
end

-- args (a task's arguments JSON: [...] or {"args":[...],"kwargs":{...}}) with first as the new
-- first positional argument (JSON text, spliced in: numbers are never re-encoded).
local function with_first(args, first)
  local head = string.sub(args, 1, 1) == '[' and '[' or '{"args":['
  local rest = string.sub(args, #head + 1)
  if string.sub(rest, 1, 1) == ']' then
    return head .. first .. rest
  end
  return head .. first .. ',' .. rest
end

-- The first argument of a task fed by ref: a task's value, or the list of a group's members'
-- values in submission order (O(members); their records expire now, having waited for this).
local function fed_first(C, ref)
  local P = C.prefix
  if string.sub(ref, 1, 2) == 't:' then
    return (fed_value(P, string.sub(ref, 3)))
  end
  local values = {}
  for _, mid in ipairs(redis.call('LRANGE', P .. 'gi:' .. string.sub(ref, 3), 0, -1)) do
    local value, s = fed_value(P, mid)
    values[#values + 1] = value
    if s == 'done' or s == 'cancelled' then
      redis.call('EXPIRE', P .. 't:' .. mid, C.keep_s)
    end
  end
  return '[' .. table.concat(values, ',') .. ']'
end

-- A waiting task (cid) whose parents have all finished leaves the waiting set: queued at the tail
-- of its lane (its first argument spliced in when it is fed); or, when one of them ended other
-- than done and its on_failure is not run, failed with DependencyFailed (fail, the default) or
-- cancelled (skip), without starting, which may release the tasks that wait for it in turn
-- (appended to follow, as finish_one does).
local function settle(C, cid, follow)
  local P = C.prefix
  local tk = P .. 't:' .. cid
  local bad, df, dr, dp, args, dx = unpack(redis.call('HMGET', tk, TASK_DEPS_BAD, TASK_ON_FAILURE, TASK_FEED,
    TASK_PARENTS, TASK_ARGS, TASK_EXPIRES_MS))
  redis.call('ZREM', P .. 'waiting', cid)
  redis.call('HDEL', tk, TASK_DEPS_LEFT)
  bad = tonumber(bad) or 0
  if bad > 0 and df ~= 'run' then
    if dx then
      redis.call('ZREM', P .. 'exp', cid)
    end
    if df == 'skip' then
      finish_one(C, cid, 'cancelled', nil, nil, nil, follow)
    else
      finish_one(C, cid, 'failed', TASK_ERROR, cjson.encode({type = 'DependencyFailed', traceback = '',
        message = bad .. ' of what it waited for (' .. dp .. ') ended failed or cancelled'}), nil, follow)
    end
    return
  end
  if dr == '1' then
    redis.call('HSET', tk, TASK_STATE, 'queued', TASK_READY_MS, fmt(C.now), TASK_ARGS,
      with_first(args, fed_first(C, dp)))
  else
    redis.call('HSET', tk, TASK_STATE, 'queued', TASK_READY_MS, fmt(C.now))
  end
  local q, p, key, lm = lane_of(C, cid)
  enqueue(C, cid, q, p, key, lm, false)
  wake_scheduler(C)
end

-- New task id waits for refs (tasks and groups that exist, 't:<id>' / 'g:<gid>'): in the waiting
-- set, counting those not finished (TASK_DEPS_LEFT) and those that ended other than done
-- (TASK_DEPS_BAD); listed in the children list of each not finished, whose flag says so (a
-- group's members finished so far are kept: the group's results wait for it). Settled at once
-- when all have finished. O(refs), and O(members) for a group.
local function wait_for(C, id, refs)
  local P = C.prefix
  local left, bad = 0, 0
  for _, ref in ipairs(refs) do
    local ended, wrong = parent_end(P, ref)
    if not ended then
      left = left + 1
      redis.call('RPUSH', children_key(P, ref), id)
      if string.sub(ref, 1, 2) == 't:' then
        redis.call('HSET', P .. ref, TASK_CHILDREN, '1')
      else
        redis.call('HSET', P .. ref, GROUP_CHILDREN, '1')
        for _, mid in ipairs(redis.call('LRANGE', P .. 'gi:' .. string.sub(ref, 3), 0, -1)) do
          redis.call('PERSIST', P .. 't:' .. mid)
        end
      end
    elseif wrong then
      bad = bad + 1
    end
  end
  redis.call('HSET', P .. 't:' .. id, TASK_DEPS_LEFT, left, TASK_DEPS_BAD, bad)
  redis.call('ZADD', P .. 'waiting', fmt(C.now), id)
  if left == 0 then
    settle(C, id, {}) -- a new task: nothing waits for it yet
  end
end

-- Any state -> done | failed | cancelled (finish_one), then the tasks that waited for it, and for
-- what finished with it in turn: each counts it (bad: one more that did not end done), and the
-- one whose last parent it was settles. Bounded by the tasks that wait, a chain's length at most.
local function finish(C, id, state, field, payload, known)
  local P = C.prefix
  local follow = {}
  finish_one(C, id, state, field, payload, known, follow)
  local i = 1
  while i <= #follow do
    local ref, bad = follow[i][1], follow[i][2]
    i = i + 1
    local ck = children_key(P, ref)
    for _, cid in ipairs(redis.call('LRANGE', ck, 0, -1)) do
      local ctk = P .. 't:' .. cid
      if redis.call('HGET', ctk, TASK_STATE) == 'waiting' then -- else: it was cancelled or expired
        if bad then
          redis.call('HINCRBY', ctk, TASK_DEPS_BAD, 1)
        end
        if redis.call('HINCRBY', ctk, TASK_DEPS_LEFT, -1) <= 0 then
          settle(C, cid, follow)
        end
      end
    end
    redis.call('DEL', ck)
  end
end

-- A waiting task whose deadline (its record's TASK_EXPIRES_MS: dx) has come ends without being
-- started: failed with a TaskExpired error, using no attempt, counted in STAT_EXPIRED as well as
-- failed. The caller took it out of its place (queue, lane, delayed or inbox) already; any running
-- counts a placement took for it are released.
local function expire_task(C, id, dx)
  release(C, id)
  redis.call('ZREM', C.prefix .. 'exp', id)
  redis.call('HINCRBY', C.stats, STAT_EXPIRED, 1)
  finish(C, id, 'failed', TASK_ERROR, '{"type":"TaskExpired","message":"not started by its deadline (' .. dx ..
    ' ms)","traceback":""}')
end

-- -> running on pid (the caller took id out of its pending list or its queue). The attempt
-- number goes up by one. dto: pid's default timeout (see attempt_timeout). at_once: it comes
-- from its queue, not the inbox: placed as it starts (its placed time written in the same
-- write). Returns {id, name,
-- args, attempt, timeout_ms}; or nil when the task's deadline has come: it is never started, and
-- ends expired instead. A unique key held until the task starts is freed (lib/unique). A first
-- attempt counts its queue wait (lib/metrics).
local function start_task(C, pid, id, dto, at_once)
  local P, now = C.prefix, C.now
  local tk = P .. 't:' .. id
  local f, a, n, o, dx, us, q, ct, rd = unpack(redis.call('HMGET', tk, TASK_NAME, TASK_ARGS, TASK_ATTEMPTS,
    TASK_TIMEOUT_MS, TASK_EXPIRES_MS, TASK_UNIQUE_STARTED, TASK_QUEUE, TASK_CREATED_MS, TASK_READY_MS))
  if dx then
    if tonumber(dx) <= now then
      expire_task(C, id, dx)
      return nil
    end
    -- started in time: its deadline no longer applies, to this attempt or to any retry
    redis.call('ZREM', P .. 'exp', id)
    redis.call('HDEL', tk, TASK_EXPIRES_MS)
  end
  if us then
    unique_free(C, id, us, TASK_UNIQUE_STARTED)
  end
  if not n then
    observe(C, METRIC_WAIT, METRIC_WAIT_SUM, q or DEFAULT_QUEUE, now - tonumber(rd or ct or now))
  end
  local attempt = fmt(tonumber(n or '0') + 1)
  o = attempt_timeout(o, dto)
  local at = fmt(now)
  if at_once then
    redis.call('HSET', tk, TASK_STATE, 'running', TASK_ATTEMPTS, attempt, TASK_STARTED_MS, at, TASK_PROCESSOR, pid,
      TASK_PLACED_MS, at)
  else
    redis.call('HSET', tk, TASK_STATE, 'running', TASK_ATTEMPTS, attempt, TASK_STARTED_MS, at, TASK_PROCESSOR, pid)
  end
  redis.call('SADD', P .. 'p:' .. pid .. ':r', id)
  if tonumber(o) > 0 then
    redis.call('ZADD', C.running, fmt(now + tonumber(o)), id)
  else
    redis.call('ZADD', C.running, '+inf', id)
  end
  return {id, f, a, attempt, o}
end

-- pending -> running for processor pid (its inbox's oldest that has not expired). Returns the
-- task or nil, and how many expired pending tasks it ended on the way (the load fell by as many).
local function start_next(C, pid, dto)
  local gone = 0
  while true do
    local id = redis.call('LPOP', C.prefix .. 'p:' .. pid .. ':i')
    if not id then
      return nil, gone
    end
    redis.call('HINCRBY', C.stats, STAT_ASSIGNED, -1)
    local t = start_task(C, pid, id, dto)
    if t then
      return t, gone
    end
    gone = gone + 1
  end
end

-- Start up to want tasks for pid: its inbox's oldest first; then, with take, the heads of its
-- queues in turn while it has a free slot, each a task its kind may run (lib/routing). dto:
-- pid's default timeout; cap, qs, stuck, kind as read from its record (nil: read here when take
-- needs them). Returns the started tasks, whether any came from a queue (the processor's load
-- then grew), and how many pending tasks of its inbox expired instead of starting (its load
-- fell: the caller reranks it).
local function start_many(C, pid, want, take, dto, cap, qs, stuck, kind)
  local P = C.prefix
  local tasks = {}
  local expired = 0
  while #tasks < want do
    local t, gone = start_next(C, pid, dto)
    expired = expired + gone
    if not t then
      break
    end
    tasks[#tasks + 1] = t
  end
  trim_wake(C, pid)
  local took = false
  if take and #tasks < want then
    local pk = P .. 'p:' .. pid
    if not cap then
      cap, qs, stuck, kind = unpack(redis.call('HMGET', pk, PROC_CAPACITY, PROC_QUEUES, PROC_STUCK, PROC_KIND))
    end
    local rt = router(P)
    local load = load_of(C, pid, 0, stuck) -- the pending list is empty here
    local names = split_commas(qs)
    local turn = redis.call('HINCRBY', pk, PROC_TURN, 1)
    local paused = pauses(C)
    local lc = policy(C, paused)
    local dry = 0
    local k = 0
    local skipped = 0 -- expired tasks met in the queues: at most 100 per call
    -- start at a different queue each time, so that no queue of the processor starves another
    while #tasks < want and load < tonumber(cap) and dry < #names do
      local q = names[(turn + k) % #names + 1]
      k = k + 1
      local qid, more, dx = nil, false, nil
      if not is_paused(paused, q) and unrouted(P, lc, q) then -- its kind may run any of q's tasks
        qid = redis.call('LPOP', P .. 'q:' .. q)
        dx = qid and deadline_due(lc, qid, C.now)
      elseif not is_paused(paused, q) then
        local c, can
        c, can, more, dx = next_routable(lc, q, C.now, function(id)
          local name, rq = unpack(redis.call('HMGET', P .. 't:' .. id, TASK_NAME, TASK_REQUIRES))
          return capable(rt, q, name or '', rq or '')
        end)
        if c and not dx and (can == nil or can[kind]) then
          take_routable(lc, c, C.now)
          qid = c.id
        elseif dx then
          qid = c.id
        end -- else: what comes next in q is for processors of other kinds
      end
      if dx then -- its deadline had come: it ends expired instead
        expire_task(C, qid, dx)
        qid = false
      end
      if more then
        wake_scheduler(C)
      end
      local t = qid and start_task(C, pid, qid, dto, true) -- queued -> running at once (nil: it expired)
      if t then
        dry = 0
        tasks[#tasks + 1] = t
        load = load + 1
        took = true
      elseif qid ~= nil and skipped < 100 then
        skipped = skipped + 1
        dry = 0 -- an expired task left the queue: look at it again
      else
        dry = dry + 1
      end
    end
  end
  return tasks, took, expired
end

-- Flatten started tasks into reply entries {'task', id, name, args, attempt, timeout, ...}.
local function started_reply(tasks)
  local out = {}
  for _, t in ipairs(tasks) do
    out[#out + 1] = 'task'
    for _, v in ipairs(t) do
      out[#out + 1] = v
    end
  end
  return out
end

-- delayed -> queued for up to limit tasks that are due: a retry at the head of its lane (it keeps
-- its place in time), a task submitted with a delay at the tail.
local function promote(C, limit)
  local P, delayed = C.prefix, C.delayed
  local ids = redis.call('ZRANGEBYSCORE', delayed, '-inf', fmt(C.now), 'LIMIT', 0, limit)
  local retries, left = {}, {}
  for _, id in ipairs(ids) do
    local tk = P .. 't:' .. id
    redis.call('ZREM', delayed, id)
    if redis.call('HEXISTS', tk, TASK_ATTEMPTS) == 1 then
      redis.call('HSET', tk, TASK_STATE, 'queued')
      retries[#retries + 1] = id
    else
      redis.call('HSET', tk, TASK_STATE, 'queued', TASK_READY_MS, fmt(C.now))
      local q, p, key, lm = lane_of(C, id)
      enqueue(C, id, q, p, key, lm, false)
      left[q] = (left[q] or 0) + 1
    end
  end
  for i = #retries, 1, -1 do -- pushed at the heads: the one due first goes last, so first
    local q, p, key, lm = lane_of(C, retries[i])
    enqueue(C, retries[i], q, p, key, lm, true)
    left[q] = (left[q] or 0) + 1
  end
  for q, n in pairs(left) do
    count_delayed(C, q, -n)
  end
  return #ids
end

-- queued again at the head of its lane (given back, or retried at once: it keeps its place in time),
-- placed nowhere.
local function back_to_head(C, id)
  local tk = C.prefix .. 't:' .. id
  local q, p, key, lm = lane_of(C, id)
  enqueue(C, id, q, p, key, lm, true)
  redis.call('HSET', tk, TASK_STATE, 'queued')
  redis.call('HDEL', tk, TASK_PROCESSOR, TASK_PLACED_MS)
end

-- A task not started (state s: waiting, queued, delayed or assigned; its record's queue q, processor p,
-- priority pr and key k as read) leaves its place without being started (cancelled, expired).
-- Returns false when s is none of those (it started or finished: nothing to leave).
local function leave_waiting(C, id, s, q, p, pr, k)
  if s == 'queued' then
    dequeue(C, id, q or DEFAULT_QUEUE, pr or '5', k or nil)
  elseif s == 'waiting' then -- the lists of what it waits for keep its id: they skip it when they end
    redis.call('ZREM', C.prefix .. 'waiting', id)
  elseif s == 'delayed' then
    redis.call('ZREM', C.delayed, id)
    count_delayed(C, q or DEFAULT_QUEUE, -1)
  elseif s == 'assigned' then
    redis.call('LREM', C.prefix .. 'p:' .. p .. ':i', 1, id)
    redis.call('HINCRBY', C.stats, STAT_ASSIGNED, -1)
    release(C, id)
    trim_wake(C, p)
    rerank(C, p)
  else
    return false
  end
  return true
end

-- Waiting tasks whose deadline has come, at most limit of them (the oldest deadlines first): each
-- leaves its place and ends expired. Returns how many.
local function expire_due(C, limit)
  local P = C.prefix
  local ids = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', fmt(C.now), 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local s, q, p, pr, k, dx = unpack(redis.call('HMGET', P .. 't:' .. id, TASK_STATE, TASK_QUEUE, TASK_PROCESSOR,
      TASK_PRIORITY, TASK_KEY, TASK_EXPIRES_MS))
    if leave_waiting(C, id, s, q, p, pr, k) then
      expire_task(C, id, dx)
    else
      redis.call('ZREM', P .. 'exp', id)
    end
  end
  return #ids
end

-- log (a task's attempt log, nil: none) with one more entry, the oldest dropped past the last 20
-- (core/timeline ATTEMPTS_KEPT). Entries are separated by byte 30, the fields of one by byte 31:
-- attempt, placed ms, started ms, ended ms, processor, how it ended (error, timeout, lease,
-- deregistered, failed), when its retry was due ('' when queued again at once), the error's type
-- and message. The texts are made one line (no control character, so neither separator) of at
-- most 200 bytes, never cut inside a UTF-8 character (what a client decodes). One function (its
-- helper inside): what every call of a script that may end an attempt pays is one closure.
-- luasched/core/timeline.py decodes it.
local function logged_attempt(log, n, pt, st, ended, pid, how, due, error_json)
  local function one_line(s)
    local flat = string.gsub(s or '', '%c', ' ')
    local cut = 200
    while cut > 0 and cut < #flat do
      local c = string.byte(flat, cut + 1)
      if c < 128 or c >= 192 then -- the next byte begins a character
        break
      end
      cut = cut - 1
    end
    return string.sub(flat, 1, cut)
  end
  local etype, message = '', ''
  local ok, e = pcall(cjson.decode, error_json or '')
  if ok and type(e) == 'table' then
    etype = type(e.type) == 'string' and e.type or ''
    message = type(e.message) == 'string' and e.message or ''
  end
  local entry = table.concat({n or '', pt or '', st or '', fmt(ended), one_line(pid), how, due and fmt(due) or '',
    one_line(etype), one_line(message)}, '\31')
  if not log or log == '' then
    return entry
  end
  local _, count = string.gsub(log, '\30', '')
  if count + 1 >= 20 then
    log = string.sub(log, string.find(log, '\30', 1, true) + 1)
  end
  return log .. '\30' .. entry
end

-- A started attempt ended without success: how, 'error' (acked so), 'timeout' (reap), 'lease'
-- or 'deregistered' (drain). The caller has already taken id out of running and the processor's
-- running set. later: retry through delayed with exponential backoff; else retry at the head of
-- the queue. A retry appends the attempt to the task's attempt log (logged_attempt). Returns
-- 'retry' or 'failed', then the ms until the retry is due (0 at the head of the queue; nil when
-- failed) and max_attempts (what a processor's log line says: "retry 2/3 in 0.50 s"). held: as
-- release takes it.
local function attempt_ended(C, id, error_json, later, held, how)
  local tk = C.prefix .. 't:' .. id
  release(C, id, held)
  local n, m, b, q, pt, st, p, log = unpack(redis.call('HMGET', tk, TASK_ATTEMPTS, TASK_MAX_ATTEMPTS,
    TASK_BACKOFF_MS, TASK_QUEUE, TASK_PLACED_MS, TASK_STARTED_MS, TASK_PROCESSOR, TASK_ATTEMPTS_LOG))
  n = tonumber(n)
  b = b or DEFAULT_BACKOFF_MS
  m = tonumber(m or DEFAULT_MAX_ATTEMPTS)
  if n >= m then
    if how ~= 'error' and p then -- (an ack names its processor already)
      redis.call('HSET', tk, TASK_LAST_PROCESSOR, p)
    end
    finish(C, id, 'failed', TASK_ERROR, error_json)
    return 'failed', nil, m
  end
  local backoff = 0
  if later then
    backoff = math.min(tonumber(b) * math.pow(2, n - 1), 3600000)
  end
  redis.call('HSET', tk, TASK_ERROR, error_json, TASK_LAST_PROCESSOR, p or '', TASK_ATTEMPTS_LOG,
    logged_attempt(log, fmt(n), pt, st, C.now, p, how, later and C.now + backoff or nil, error_json))
  redis.call('HINCRBY', C.stats, STAT_RETRIED, 1)
  if later then
    redis.call('ZADD', C.delayed, fmt(C.now + backoff), id)
    count_delayed(C, q or DEFAULT_QUEUE, 1)
    redis.call('HSET', tk, TASK_STATE, 'delayed')
    redis.call('HDEL', tk, TASK_PROCESSOR, TASK_PLACED_MS)
  else
    back_to_head(C, id)
  end
  return 'retry', backoff, m
end

-- Give back a processor's whole inbox and remove it. Pending tasks go back to the head of their
-- queues in order, without using an attempt; started ones used their attempt. Ids appended to out.
-- Returns how many ids it appended, and how many of them were on their last attempt (now failed).
local function drain(C, pid, reason, out)
  local P = C.prefix
  local ik = P .. 'p:' .. pid .. ':i'
  local rk = P .. 'p:' .. pid .. ':r'
  local pending = redis.call('LRANGE', ik, 0, -1)
  for i = #pending, 1, -1 do
    release(C, pending[i])
    back_to_head(C, pending[i])
  end
  if #pending > 0 then
    redis.call('HINCRBY', C.stats, STAT_ASSIGNED, -#pending)
  end
  local started = redis.call('SMEMBERS', rk)
  table.sort(started) -- SMEMBERS order differs between servers: give back in a known order
  local err = '{"type":"LeaseLost","message":"' .. reason .. ' while running on processor ' .. pid .. '"}'
  local how = reason == 'deregistered' and reason or 'lease'
  local dead = 0
  for _, id in ipairs(started) do
    redis.call('ZREM', C.running, id)
    if attempt_ended(C, id, err, false, nil, how) == 'failed' then
      dead = dead + 1
    end
  end
  for i = 1, #pending do
    out[#out + 1] = pending[i]
  end
  for _, id in ipairs(started) do
    out[#out + 1] = id
  end
  local qs, k = unpack(redis.call('HMGET', P .. 'p:' .. pid, PROC_QUEUES, PROC_KIND))
  if qs and k then
    for _, q in ipairs(split_commas(qs)) do
      redis.call('ZREM', rank_key(P, k, q), pid)
    end
  end
  kind_leave(C, pid, k, qs)
  redis.call('SREM', C.idle, pid)
  redis.call('ZREM', C.procs, pid)
  redis.call('DEL', ik, rk, P .. 'p:' .. pid, P .. 'p:' .. pid .. ':w')
  redis.call('HDEL', C.cards, pid)
  return #pending + #started, dead
end
