--[[ lib/lifecycle: a task's moves between the places it can be (queued, delayed, running, finished).
  Starting, finishing, retrying and giving back tasks; also a processor leaving (drain), since
  what that does is give its tasks back. Never places a task on a processor: that is
  lib/placement, which includes this library (its own processor starts what it places at once).
  Includes: fields, util, processors, lanes, routing, unique
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
-- known: {w, g, u} read from the record already (waiter flag, group, unique key held until it
-- finishes: the caller knows it started, so it holds none until it starts), or nil to read
-- them here. A unique key the task holds is freed (lib/unique).
local function finish(C, id, state, field, payload, known)
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
  local w, g, u, us
  if known then
    w, g, u = known[1], known[2], known[3]
  else
    w, g, u, us = unpack(redis.call('HMGET', tk, TASK_WAITER, TASK_GROUP, TASK_UNIQUE, TASK_UNIQUE_STARTED))
  end
  if u then
    unique_free(C, id, u, TASK_UNIQUE)
  end
  if us then
    unique_free(C, id, us, TASK_UNIQUE_STARTED)
  end
  if w then
    local wk = P .. 'w:' .. id
    redis.call('RPUSH', wk, '1')
    redis.call('EXPIRE', wk, 300)
  end
  if g then
    local gk = P .. 'g:' .. g
    if redis.call('EXISTS', gk) == 1 then
      redis.call('HINCRBY', gk, state, 1)
      redis.call('XADD', P .. 'gs:' .. g, '*', EVENT_TASK, id, EVENT_STATE, state)
      local n, d, f, c = unpack(redis.call('HMGET', gk, GROUP_TOTAL, GROUP_DONE, GROUP_FAILED, GROUP_CANCELLED))
      -- a group made before its total had a name of its own counts its member list (the same number)
      n = tonumber(n) or redis.call('LLEN', P .. 'gi:' .. g)
      if (tonumber(d) or 0) + (tonumber(f) or 0) + (tonumber(c) or 0) >= n then
        redis.call('EXPIRE', gk, keep_s)
        redis.call('EXPIRE', P .. 'gs:' .. g, keep_s)
        redis.call('EXPIRE', P .. 'gi:' .. g, keep_s)
      end
    end
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
-- number goes up by one. dto: pid's default timeout (see attempt_timeout). Returns {id, name,
-- args, attempt, timeout_ms}; or nil when the task's deadline has come: it is never started, and
-- ends expired instead. A unique key held until the task starts is freed (lib/unique).
local function start_task(C, pid, id, dto)
  local P, now = C.prefix, C.now
  local tk = P .. 't:' .. id
  local f, a, n, o, dx, us = unpack(redis.call('HMGET', tk, TASK_NAME, TASK_ARGS, TASK_ATTEMPTS, TASK_TIMEOUT_MS,
    TASK_EXPIRES_MS, TASK_UNIQUE_STARTED))
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
  local attempt = fmt(tonumber(n or '0') + 1)
  o = attempt_timeout(o, dto)
  redis.call('HSET', tk, TASK_STATE, 'running', TASK_ATTEMPTS, attempt, TASK_STARTED_MS, fmt(now), TASK_PROCESSOR, pid)
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
      local t = qid and start_task(C, pid, qid, dto) -- queued -> running at once (nil: it expired)
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
    redis.call('HSET', tk, TASK_STATE, 'queued')
    if redis.call('HEXISTS', tk, TASK_ATTEMPTS) == 1 then
      retries[#retries + 1] = id
    else
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

-- queued again at the head of its lane (given back, or retried at once: it keeps its place in time).
local function back_to_head(C, id)
  local tk = C.prefix .. 't:' .. id
  local q, p, key, lm = lane_of(C, id)
  enqueue(C, id, q, p, key, lm, true)
  redis.call('HSET', tk, TASK_STATE, 'queued')
  redis.call('HDEL', tk, TASK_PROCESSOR)
end

-- A waiting task (state s: queued, delayed or assigned; its record's queue q, processor p,
-- priority pr and key k as read) leaves its place without being started (cancelled, expired).
-- Returns false when s is none of those (it started or finished: nothing to leave).
local function leave_waiting(C, id, s, q, p, pr, k)
  if s == 'queued' then
    dequeue(C, id, q or DEFAULT_QUEUE, pr or '5', k or nil)
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

-- A started attempt ended without success (error, timeout, lease lost). The caller has already
-- taken id out of running and the processor's running set. later: retry through delayed with
-- exponential backoff; else retry at the head of the queue. Returns 'retry' or 'failed', then
-- the ms until the retry is due (0 at the head of the queue; nil when failed) and max_attempts
-- (what a processor's log line says: "retry 2/3 in 0.50 s"). held: as release takes it.
local function attempt_ended(C, id, error_json, later, held)
  local tk = C.prefix .. 't:' .. id
  release(C, id, held)
  local n, m, b, q = unpack(redis.call('HMGET', tk, TASK_ATTEMPTS, TASK_MAX_ATTEMPTS, TASK_BACKOFF_MS, TASK_QUEUE))
  n = tonumber(n)
  b = b or DEFAULT_BACKOFF_MS
  m = tonumber(m or DEFAULT_MAX_ATTEMPTS)
  if n >= m then
    finish(C, id, 'failed', TASK_ERROR, error_json)
    return 'failed', nil, m
  end
  redis.call('HSET', tk, TASK_ERROR, error_json)
  local backoff = 0
  if later then
    backoff = math.min(tonumber(b) * math.pow(2, n - 1), 3600000)
    redis.call('ZADD', C.delayed, fmt(C.now + backoff), id)
    count_delayed(C, q or DEFAULT_QUEUE, 1)
    redis.call('HSET', tk, TASK_STATE, 'delayed')
    redis.call('HDEL', tk, TASK_PROCESSOR)
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
  local dead = 0
  for _, id in ipairs(started) do
    redis.call('ZREM', C.running, id)
    if attempt_ended(C, id, err, false) == 'failed' then
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
