--[[ lib/placement: one placing call (dispatch, submit's dispatch, ack's dispatch on ack).
  Chooses for each task, among the live idle processors serving its queue that may run it (of a
  kind that has its task name and whose labels meet its requires: lib/routing), the least loaded
  (ties: idle longest), before the task leaves its queue. The processors a call meets are read
  once (their cards), their rankings kept in memory while the call places tasks and written back
  once.
  Includes: fields, util, processors, lanes, lifecycle, routing
]]
-- One placing call (dispatch, or submit's dispatch): the processors it met, with capacity, queues
-- and liveness read once per call (a lease cannot change while the script runs), and per queue
-- the kinds serving it (qk:<queue>), each with a heap of its idle ranking's head. The rankings
-- are kept in Lua while the call places tasks and written back once per processor by placed: a processor that takes a task is re-ranked in
-- memory, not with a ZADD per task. want: how many tasks the call may place at most. paused: the
-- namespace's pauses, read once (nil: nothing is paused); a paused queue gives no task. at: the
-- call's time as stored (when a task it places was placed).
local function placer(C, want)
  local paused = pauses(C)
  return {C = C, P = C.prefix, stats = C.stats, idle = C.idle, cards = C.cards, want = want, known = {},
          queue_lists = {}, ranks = {}, dirty = {}, assigned = 0, started = 0, seq = nil, seqs = 0,
          paused = paused, lc = policy(C, paused), more = false, skipped = 0, behind = {}, rt = router(C.prefix),
          at = fmt(C.now)}
end

-- The next tie-break number of the idle rankings: the counter is read once per call and
-- written back once, by placed (the same numbers as one HINCRBY per placement).
local function next_seq(pl)
  if not pl.seq then
    pl.seq = tonumber(redis.call('HGET', pl.stats, STAT_SEQ) or '0')
  end
  pl.seq = pl.seq + 1
  pl.seqs = pl.seqs + 1
  return pl.seq
end

local function learn(pl, pid, cap, qs, dl, k)
  qs = qs or ''
  local queues = pl.queue_lists[qs] -- shared by the processors that serve the same queues (read only)
  if not queues then
    queues = {}
    if qs ~= '' then
      queues = string.find(qs, ',', 1, true) and split_commas(qs) or {qs}
    end
    pl.queue_lists[qs] = queues
  end
  -- every field it will hold named here (nil ones too): the table is made at its final size
  local info = {cap = tonumber(cap), queues = queues, alive = lease_ok(pl.C, pid, dl, cap), kind = k,
                ranked = nil, key = nil, load = nil, dirty = nil}
  pl.known[pid] = info
  return info
end

-- A binary min-heap of (key, pid) pairs in two arrays, rank.hk and rank.hp (no table per entry).
local function heap_push(rank, key, pid)
  local hk, hp = rank.hk, rank.hp
  local n = #hk + 1
  while n > 1 do
    local up = (n - n % 2) / 2
    if hk[up] <= key then
      break
    end
    hk[n], hp[n] = hk[up], hp[up]
    n = up
  end
  hk[n], hp[n] = key, pid
end

local function heap_pop(rank)
  local hk, hp = rank.hk, rank.hp
  local key, pid, n = hk[1], hp[1], #hk
  local lk, lp = hk[n], hp[n]
  hk[n], hp[n] = nil, nil
  n = n - 1
  if n > 0 then
    local i = 1
    while true do
      local l = 2 * i
      if l > n then
        break
      end
      if l < n and hk[l + 1] < hk[l] then
        l = l + 1
      end
      if lk <= hk[l] then
        break
      end
      hk[i], hp[i] = hk[l], hp[l]
      i = l
    end
    hk[i], hp[i] = lk, lp
  end
  return key, pid
end

-- Fill rank from the head of its stored ranking: as many processors as the call may still
-- place tasks (at most 256), their cards read in ONE HMGET (a processor without a card, whose
-- record predates cards, is read from its record). A processor the call already re-ranked keeps
-- its key from memory. The entries read in the ranking's order form a run that the call reads
-- with a cursor (no heap work per pick); only keys re-ranked in memory go to rank's heap.
-- bound: the last stored score read (none: the ranking was read whole); every processor not
-- read ranks at or after it, so rank's head (peek) is the ranking's head while it is not past
-- bound.
local function fetch(pl, rank)
  local k = math.min(math.max(pl.want - pl.assigned, 1), 256)
  local flat = redis.call('ZRANGE', rank.ik, 0, k - 1, 'WITHSCORES')
  local unknown = {}
  for i = 1, #flat, 2 do
    if not pl.known[flat[i]] then
      unknown[#unknown + 1] = flat[i]
    end
  end
  if #unknown > 0 then
    local cards = redis.call('HMGET', pl.cards, unpack(unknown))
    for i, pid in ipairs(unknown) do
      local cap, dl, qs
      if cards[i] then
        cap, dl, qs = string.match(cards[i], '^(%d+) (%d+) (.*)$')
      end
      if not cap then
        cap, qs, dl = unpack(redis.call('HMGET', pl.P .. 'p:' .. pid, PROC_CAPACITY, PROC_QUEUES, PROC_DEADLINE_MS))
      end
      learn(pl, pid, cap, qs, dl, rank.kind)
    end
  end
  local rk, rp, n = {}, {}, 0
  rank.hk, rank.hp = {}, {}
  for i = 1, #flat, 2 do
    local pid = flat[i]
    local info = pl.known[pid]
    local stored = tonumber(flat[i + 1])
    if not info.ranked then -- first sight: its stored score is its key
      info.ranked = true
      info.key = stored
      info.load = math.floor(stored / TWO40)
    end
    if info.key == stored then -- in the ranking's order
      n = n + 1
      rk[n], rp[n] = stored, pid
    elseif info.key then -- re-ranked in memory by this call (another queue's placement): higher
      heap_push(rank, info.key, pid)
    end
  end
  rank.rk, rank.rp, rank.ri = rk, rp, 1
  rank.bound = #flat == 2 * k and tonumber(flat[#flat]) or math.huge
end

-- The head of rank: the smaller of the run read from the ranking (in order: a cursor) and of
-- the heap of keys re-ranked since (lower first; nil when both are empty); run: it is the run's.
local function peek(rank)
  local a, b = rank.rk[rank.ri], rank.hk[1]
  if a and (not b or a <= b) then
    return a, true
  end
  return b, false
end

local function take(rank, run)
  if run then
    local i = rank.ri
    rank.ri = i + 1
    return rank.rk[i], rank.rp[i]
  end
  return heap_pop(rank)
end

-- Write the keys the call changed back to the idle rankings: one ZADD (or ZREM) per queue.
local function flush(pl)
  if #pl.dirty == 0 then
    return
  end
  local adds, rems, full = {}, {}, {}
  for _, pid in ipairs(pl.dirty) do
    local info = pl.known[pid]
    info.dirty = false
    local into = info.key and adds or rems
    for _, q in ipairs(info.queues) do
      local ik = rank_key(pl.P, info.kind, q)
      local list = into[ik]
      if not list then
        list = {}
        into[ik] = list
      end
      if info.key then
        list[#list + 1] = info.key -- a number: Redis writes it with %.17g, exact below 2^53
      end
      list[#list + 1] = pid
    end
    if not info.key then
      full[#full + 1] = pid
    end
  end
  pl.dirty = {}
  for ik, args in pairs(adds) do
    call_chunked('ZADD', ik, args)
  end
  for ik, pids in pairs(rems) do
    call_chunked('ZREM', ik, pids)
  end
  if #full > 0 then
    call_chunked('SREM', pl.idle, full)
  end
end

-- The idle rankings of queue q, one per kind serving it (qk:<queue>, read once per call): a list
-- of ranks, and by_kind. A rank's head is read when it is first looked at.
local function queue_ranks(pl, q)
  local qr = pl.ranks[q]
  if not qr then
    qr = {list = {}, by_kind = {}}
    for _, k in ipairs(queue_kinds(pl.rt, q)) do
      local rank = {ik = rank_key(pl.P, k, q), kind = k, hk = {}, hp = {}, rk = nil}
      qr.list[#qr.list + 1] = rank
      qr.by_kind[k] = rank
    end
    pl.ranks[q] = qr
  end
  return qr
end

-- The key at rank's head and whether it is the run's (peek), nil when the ranking is empty; reads
-- the stored ranking (again) when what was read of it ran out.
local function head(pl, rank)
  if not rank.rk then
    fetch(pl, rank)
  end
  local top, run = peek(rank)
  if top and top <= rank.bound then
    return top, run
  end
  if rank.bound == math.huge then
    return nil
  end
  flush(pl) -- the stored ranking is then exact: read its head again
  fetch(pl, rank)
  return peek(rank)
end

-- Whether a ranking of q has a head: some processor serving q may be idle (pick is exact).
local function any_idle(pl, q)
  for _, rank in ipairs(queue_ranks(pl, q).list) do
    if head(pl, rank) then
      return true
    end
  end
  return false
end

-- The least-loaded live idle processor serving q (ties: idle longest) and its load, or nil: the
-- lowest head among the rankings of q's kinds (can: the kinds allowed, nil for all). Lapsed
-- processors met at a head are dropped from the idle rankings and set (reap takes their inbox).
local function pick(pl, q, can)
  local qr = queue_ranks(pl, q)
  local dropped = 0
  while true do
    local best, best_key, best_run = nil, nil, nil
    for _, rank in ipairs(qr.list) do
      if not can or can[rank.kind] then
        local top, run = head(pl, rank)
        if top and (not best_key or top < best_key) then
          best, best_key, best_run = rank, top, run
        end
      end
    end
    if not best then
      return nil
    end
    local key, pid = take(best, best_run)
    local info = pl.known[pid]
    if not info.alive then -- never re-ranked: one entry per heap
      redis.call('ZREM', best.ik, pid)
      redis.call('SREM', pl.idle, pid)
      dropped = dropped + 1
      if dropped >= 32 then
        return nil
      end
    elseif info.key == key then -- else a stale entry: the processor was re-ranked or is full
      return pid, info.load
    end
  end
end

-- pid, picked for queue q but given no task, goes back in its place in q's ranking of its kind.
local function put_back(pl, q, pid)
  local info = pl.known[pid]
  heap_push(pl.ranks[q].by_kind[info.kind], info.key, pid)
end

-- pid took a task: its load goes up by one in memory, and it is re-ranked in the heaps (written
-- back by flush). load is pid's load before.
local function rerank_in_memory(pl, pid, load)
  local info = pl.known[pid]
  info.load = load + 1
  if not info.dirty then
    info.dirty = true
    pl.dirty[#pl.dirty + 1] = pid
  end
  if info.load < info.cap then
    info.key = info.load * TWO40 + next_seq(pl)
    for _, q in ipairs(info.queues) do
      local qr = pl.ranks[q]
      local rank = qr and qr.by_kind[info.kind]
      if rank and rank.rk then
        heap_push(rank, info.key, pid)
      end
    end
  else
    info.key = nil -- full: out of every ranking
  end
end

-- Task id, whose record already says assigned to pid, goes into pid's inbox: counted as assigned,
-- pid re-ranked in memory (load is its load before) and woken.
local function hand_over(pl, id, pid, load)
  local P = pl.P
  redis.call('RPUSH', P .. 'p:' .. pid .. ':i', id)
  pl.assigned = pl.assigned + 1
  rerank_in_memory(pl, pid, load)
  redis.call('RPUSH', P .. 'p:' .. pid .. ':w', '1')
end

-- queued (already popped by the caller) -> inbox of pid, pending; load is pid's load before.
-- The idle ranking is updated from the known load (the score holds it): no inbox is counted.
-- When pid is the placer's own (pl.own: the acking processor, whose slot starts what it places
-- in the same call, its inbox being empty; own.dto its default timeout), the task starts at once
-- instead: queued -> running, no inbox, no wake-up token, not counted as assigned.
local function assign(pl, id, pid, load)
  local own = pl.own
  if own and own.pid == pid and #own.tasks < own.want then
    local t = start_task(pl.C, pid, id, own.dto, true)
    if not t then
      return false -- its deadline had come: it expired instead
    end
    own.tasks[#own.tasks + 1] = t
    pl.started = pl.started + 1
    rerank_in_memory(pl, pid, load)
    return true
  end
  redis.call('HSET', pl.P .. 't:' .. id, TASK_STATE, 'assigned', TASK_PROCESSOR, pid, TASK_PLACED_MS, pl.at)
  hand_over(pl, id, pid, load)
  return true
end

-- For a new task of plain queue q that submit places at once (named name, requiring rq: '' for
-- nothing): the processor it goes to and that processor's load, or nil (the task is then queued).
-- Only while q holds no task (read once per call; pl.behind[q] is set once a task of q is
-- queued): a task placed before the tasks queued ahead of it would jump them. The caller writes
-- the record as assigned, then hands it over.
local function place_new(pl, q, name, rq)
  if pl.behind[q] == nil then
    pl.behind[q] = is_paused(pl.paused, q) or redis.call('LLEN', pl.P .. 'q:' .. q) > 0
  end
  if pl.behind[q] then
    return nil
  end
  local can, n = capable(pl.rt, q, name, rq)
  if n == 0 then
    return nil
  end
  return pick(pl, q, can)
end

-- Task id (taken from q) goes to pid (assign); the pair is appended to out: true. Else it expired
-- as its start came: pid goes back in its place, the call counts the skip, and the next task is
-- looked at, until 100 (then the second result says stop): false.
local function assign_or_skip(pl, q, id, pid, load, out)
  if assign(pl, id, pid, load) then
    out[#out + 1] = id
    out[#out + 1] = pid
    return true, false
  end
  put_back(pl, q, pid)
  pl.skipped = pl.skipped + 1
  if pl.skipped >= 100 then
    pl.more = true
    return false, true
  end
  return false, false
end

-- assign_from_queue for a plain queue whose tasks any processor serving it may run: the processor
-- is chosen first, then the queue's head taken.
local function assign_plain(pl, q, limit, out)
  local C, qk = pl.C, pl.P .. 'q:' .. q
  local n = 0
  while n < limit do
    local pid, load = pick(pl, q, nil)
    if not pid then
      break
    end
    local id = redis.call('LPOP', qk)
    -- a task past its deadline is never placed: it ends expired, and the next one is looked at
    -- (at most 100 per call; a scheduler's reap ends the rest)
    local dx = id and deadline_due(pl.lc, id, C.now)
    while dx and pl.skipped < 100 do
      expire_task(C, id, dx)
      pl.skipped = pl.skipped + 1
      id = redis.call('LPOP', qk)
      dx = id and deadline_due(pl.lc, id, C.now)
    end
    if dx then -- the 100th: it goes back, for a later call
      redis.call('LPUSH', qk, id)
      id = nil
      pl.more = true
    end
    if not id then
      put_back(pl, q, pid)
      break
    end
    local ok, stop = assign_or_skip(pl, q, id, pid, load, out)
    if ok then
      n = n + 1
    elseif stop then
      break
    end
  end
  return n
end

-- Move up to limit tasks from the head of queue q (in lanes mode: the task lib/lanes chooses) to
-- chosen processors; pairs appended to out. The processor is chosen before the task leaves its
-- queue: a task never leaves its queue without a place. A task goes only to a processor that may
-- run it (lib/routing); when those are all busy, it waits and the call moves on to another queue
-- (the tasks behind it wait in order); when no registered processor may run it, the tasks just
-- behind it may go first (lib/lanes next_routable).
local function assign_from_queue(pl, q, limit, out)
  if is_paused(pl.paused, q) then
    return 0
  end
  local C, rt, P = pl.C, pl.rt, pl.P
  if unrouted(P, pl.lc, q) then -- any processor serving q may take any of its tasks: as before routing
    return assign_plain(pl, q, limit, out)
  end
  local function route(id)
    local name, rq = unpack(redis.call('HMGET', P .. 't:' .. id, TASK_NAME, TASK_REQUIRES))
    return capable(rt, q, name or '', rq or '')
  end
  local n = 0
  while n < limit and any_idle(pl, q) do
    local c, can, more, dx = next_routable(pl.lc, q, C.now, route)
    -- a task past its deadline is never placed: it ends expired, and the next one is looked at
    -- (at most 100 per call; a scheduler's reap ends the rest)
    if dx then
      expire_task(C, c.id, dx)
      pl.skipped = pl.skipped + 1
      if pl.skipped >= 100 then
        pl.more = true
        break
      end
    elseif not c then
      pl.more = pl.more or more
      break
    else
      local pid, load = pick(pl, q, can)
      if not pid then
        break -- the processors that may run it are busy: it waits, in its place
      end
      take_routable(pl.lc, c, C.now)
      local ok, stop = assign_or_skip(pl, q, c.id, pid, load, out)
      if ok then
        n = n + 1
      elseif stop then
        break
      end
    end
  end
  return n
end

-- Place up to limit tasks from the heads of the named queues, one task per queue per round, so
-- that one busy queue cannot starve the others (the rounds start at names[turn % #names + 1]);
-- pairs {id, pid} appended to out. Returns how many, and whether any of the queues still holds
-- tasks after (true when it may: a queue met no idle processor).
local function place_queued(pl, names, limit, out, turn)
  local C = pl.C
  local left, laned = {}, {}
  local n = 0
  -- A task that ends expired here may release tasks that waited for it into any queue (lib/lifecycle
  -- settle), one already looked at among them: then the queues are read once more.
  for _ = 1, 2 do
    local active, expired = {}, pl.skipped
    left, laned = {}, {}
    for k = 0, #names - 1 do
      local q = names[(turn + k) % #names + 1]
      local depth = 0
      if not is_paused(pl.paused, q) then
        depth = redis.call('LLEN', pl.P .. 'q:' .. q)
        local in_lanes = redis.call('EXISTS', pl.P .. 'lanes:' .. q) == 1
        pl.lc.laned[q] = in_lanes -- next_routable reads it from there
        if in_lanes then -- lanes mode: how many are ready is not known
          due_once(pl.lc, C.now)
          depth = has_ready(pl.C, q) and limit or 0
          laned[q] = true
        end
      end
      if depth > 0 then
        active[#active + 1] = q
        left[q] = depth
      end
    end
    while n < limit and #active > 0 do
      local still = {}
      for _, q in ipairs(active) do
        if n >= limit then
          break
        end
        if assign_from_queue(pl, q, 1, out) == 1 then
          n = n + 1
          left[q] = left[q] - 1
          if left[q] > 0 then
            still[#still + 1] = q
          end
        end
      end
      active = still
    end
    if n >= limit or pl.skipped == expired then
      break
    end
  end
  for q, depth in pairs(left) do
    if depth > 0 and (not laned[q] or has_ready(pl.C, q)) then
      return n, true
    end
  end
  return n, pl.more
end

-- Settle a placing call: the rankings written back, its counters added in one write (util
-- add_counts), with submitted (the caller's new tasks, counted with them; nil: 0) and sets (more
-- stats fields to set, or nil); and a scheduler loop woken when lanes were left unlooked at.
local function placed(pl, submitted, sets)
  flush(pl)
  if pl.more then
    wake_scheduler(pl.C)
  end
  add_counts(pl.stats, {STAT_ASSIGNED, pl.assigned, STAT_PLACED, pl.assigned + pl.started, STAT_SEQ, pl.seqs,
                        STAT_SUBMITTED, submitted or 0}, sets)
end
