--[[ _lib: local helpers that luasched/scripts.py puts in front of every script (those it uses).
  Each helper is a local function of its explicit arguments: no globals, no KEYS or ARGV.
  P is the namespace prefix "luasched:{ns}:". Every key built here starts with P, so it
  carries the namespace hash tag and lands on the same cluster slot as the KEYS given.
  Key names must match luasched/keys.py (tests/unit/test_keys.py runs both and compares).

  The fixed keys, passed in this order as KEYS to every script:
    KEYS[1] stats    HASH  counters: submitted assigned done failed cancelled seq, last_dispatch_ms
    KEYS[2] delayed  ZSET  task id -> due ms
    KEYS[3] running  ZSET  task id -> deadline ms (+inf when the task has no timeout)
    KEYS[4] failed   ZSET  task id -> failed-at ms (the dead letters)
    KEYS[5] queues   SET   names of every queue used
    KEYS[6] procs    ZSET  processor id -> lease deadline ms (the registry)
    KEYS[7] idle     SET   processors with load < capacity
    KEYS[8] wake     LIST  wake-up token for scheduler loops (at most one element)

  Keys built from P:
    t:<id>       HASH  task record: f name, q queue, a args JSON, s state, n attempts started,
                       m max attempts, o timeout ms, b backoff ms, p processor, g group
                       (q, n, m, b, o left out while they hold their defaults: see below),
                       r result JSON, e error JSON, by processor of the last attempt, w waiter flag,
                       x cancel request id,
                       ct created ms, st started ms, ft finished ms
    w:<id>       LIST  wake-up token for result() waiters of task <id>
    q:<queue>    LIST  queued task ids, head first
    idle:<queue> ZSET  processor id -> load * 2^40 + seq, for processors serving <queue>
    p:<pid>      HASH  processor: c capacity, qs queues (comma-joined), ls lease ms, n name,
                       rt registered ms, hb last heartbeat ms, dl lease deadline ms (the
                       same as its score in procs, written with it: a script that reads the
                       record learns the lease in the same HMGET), m<slot> / b<slot> ack / start
                       replay memo of a slot
    cards        HASH  processor id -> "capacity lease-deadline-ms queues" (its record's c, dl
                       and qs in one field: dispatch reads many processors in one HMGET)
    p:<pid>:i    LIST  inbox, assigned and not started
    p:<pid>:r    SET   inbox, started (running)
    p:<pid>:w    LIST  wake-up tokens for the processor's slots (never more than its pending)
    g:<gid>      HASH  group: n members, done failed cancelled counts
    rate:<n>     HASH  tasks finished in the 10 s from n * 10 s, by state (expire after 2 min)
    r:<rid>      STRING the reply of request <rid> (JSON), kept 30 s so that a replay answers the same
    gi:<gid>     LIST  the member ids of group <gid>, in submission order
    gs:<gid>     STREAM one entry per member of group <gid> that finished: t id, s state
  Each kind of key has its own prefix, and the ids after it never contain the next kind's
  prefix, so no task, queue or group id can name another key (task ids may contain ':').
]]
local TWO40 = 1099511627776

-- A task record leaves out fields that hold these values, and reads a missing one as its default:
-- every queued task has a record, and a smaller one fits a smaller allocation.
local DEFAULT_QUEUE, DEFAULT_MAX_ATTEMPTS, DEFAULT_BACKOFF_MS = 'default', '3', '1000'

local function queue_of(P, id)
  return redis.call('HGET', P .. 't:' .. id, 'q') or DEFAULT_QUEUE
end

local function fmt(n)
  return string.format('%.0f', n)
end

local function clock_ms(given)
  if given ~= '' then
    return tonumber(given)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split_commas(s)
  local out = {}
  for part in string.gmatch(s, '[^,]+') do
    out[#out + 1] = part
  end
  return out
end

-- A processor is alive while its lease deadline is not in the past.
local function alive(procs, pid, now)
  local deadline = redis.call('ZSCORE', procs, pid)
  return deadline ~= false and deadline ~= nil and tonumber(deadline) >= now
end

-- The same from the record's dl field, read with other fields; a record written before dl
-- existed (no dl) asks the registry.
local function lease_ok(procs, pid, now, dl, cap)
  if dl then
    return tonumber(dl) >= now
  end
  return cap ~= false and cap ~= nil and alive(procs, pid, now)
end

-- A processor's card in the cards HASH: what placing a task needs of it, "capacity
-- lease-deadline-ms queues", written wherever its record's c, dl or qs change.
local function write_card(P, pid, cap, dl, qs)
  if cap and dl and qs then
    redis.call('HSET', P .. 'cards', pid, cap .. ' ' .. dl .. ' ' .. qs)
  end
end

local function wake_scheduler(wake)
  if redis.call('LLEN', wake) == 0 then
    redis.call('RPUSH', wake, '1')
  end
end

-- Keep the idle zsets and the idle set in step with the processor's load. Returns its pending
-- count (nil for a processor not registered).
local function rerank(P, stats, idle, pid, cap, qs)
  if not cap then
    cap, qs = unpack(redis.call('HMGET', P .. 'p:' .. pid, 'c', 'qs'))
  end
  if not cap then
    return
  end
  local pending = redis.call('LLEN', P .. 'p:' .. pid .. ':i')
  local load = pending + redis.call('SCARD', P .. 'p:' .. pid .. ':r')
  if load < tonumber(cap) then
    local seq = redis.call('HINCRBY', stats, 'seq', 1)
    local score = fmt(load * TWO40 + seq)
    for _, q in ipairs(split_commas(qs)) do
      redis.call('ZADD', P .. 'idle:' .. q, score, pid)
    end
    redis.call('SADD', idle, pid)
  else
    for _, q in ipairs(split_commas(qs)) do
      redis.call('ZREM', P .. 'idle:' .. q, pid)
    end
    redis.call('SREM', idle, pid)
  end
  return pending
end

-- Tokens in a processor's wake list never outnumber its pending tasks.
local function trim_wake(P, pid)
  local pending = redis.call('LLEN', P .. 'p:' .. pid .. ':i')
  local wk = P .. 'p:' .. pid .. ':w'
  if redis.call('LLEN', wk) > pending then
    if pending == 0 then
      redis.call('DEL', wk)
    else
      redis.call('LTRIM', wk, 0, pending - 1)
    end
  end
end

-- One placing call (dispatch, or submit's dispatch): the processors it met, with capacity, queues
-- and liveness read once per call (a lease cannot change while the script runs), and per queue a
-- heap of its idle ranking's head. The ranking is kept in Lua while the call places tasks and
-- written back once per processor by placed: a processor that takes a task is re-ranked in
-- memory, not with a ZADD per task. want: how many tasks the call may place at most.
local function placer(P, stats, procs, idle, now, want)
  return {P = P, stats = stats, procs = procs, idle = idle, now = now, want = want, known = {},
          queue_lists = {}, ranks = {}, dirty = {}, assigned = 0, seq = nil, seqs = 0}
end

-- The next tie-break number of the idle rankings: the counter is read once per call and
-- written back once, by placed (the same numbers as one HINCRBY per placement).
local function next_seq(pl)
  if not pl.seq then
    pl.seq = tonumber(redis.call('HGET', pl.stats, 'seq') or '0')
  end
  pl.seq = pl.seq + 1
  pl.seqs = pl.seqs + 1
  return pl.seq
end

local function learn(pl, pid, cap, qs, dl)
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
  local info = {cap = tonumber(cap), queues = queues, alive = lease_ok(pl.procs, pid, pl.now, dl, cap),
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
    local cards = redis.call('HMGET', pl.P .. 'cards', unpack(unknown))
    for i, pid in ipairs(unknown) do
      local cap, dl, qs
      if cards[i] then
        cap, dl, qs = string.match(cards[i], '^(%d+) (%d+) (.*)$')
      end
      if not cap then
        cap, qs, dl = unpack(redis.call('HMGET', pl.P .. 'p:' .. pid, 'c', 'qs', 'dl'))
      end
      learn(pl, pid, cap, qs, dl)
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

-- cmd key followed by args, in calls of at most 4000 args (Lua's unpack has a limit).
local function call_chunked(cmd, key, args)
  for i = 1, #args, 4000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 3999, #args)))
  end
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
      local list = into[q]
      if not list then
        list = {}
        into[q] = list
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
  for q, args in pairs(adds) do
    call_chunked('ZADD', pl.P .. 'idle:' .. q, args)
  end
  for q, pids in pairs(rems) do
    call_chunked('ZREM', pl.P .. 'idle:' .. q, pids)
  end
  if #full > 0 then
    call_chunked('SREM', pl.idle, full)
  end
end

-- The least-loaded live idle processor serving q (ties: idle longest) and its load, or nil.
-- Lapsed processors met at the head are dropped from the idle sets (reap takes their inbox).
local function pick(pl, q)
  local rank = pl.ranks[q]
  if not rank then
    rank = {ik = pl.P .. 'idle:' .. q}
    pl.ranks[q] = rank
    fetch(pl, rank)
  end
  local dropped = 0
  while true do
    local top, run = peek(rank)
    if not top or top > rank.bound then
      if rank.bound == math.huge then
        return nil
      end
      flush(pl) -- the stored ranking is then exact: read its head again
      fetch(pl, rank)
      if not peek(rank) then
        return nil
      end
    else
      local key, pid = take(rank, run)
      local info = pl.known[pid]
      if not info.alive then -- never re-ranked: one entry per heap
        redis.call('ZREM', rank.ik, pid)
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
end

-- -> running on pid (the caller took id out of its pending list or its queue). The attempt
-- number goes up by one. Returns {id, name, args, attempt, timeout_ms}.
local function start_task(P, running, pid, now, id)
  local tk = P .. 't:' .. id
  local f, a, n, o = unpack(redis.call('HMGET', tk, 'f', 'a', 'n', 'o'))
  local attempt = fmt(tonumber(n or '0') + 1)
  o = o or '0'
  redis.call('HSET', tk, 's', 'running', 'n', attempt, 'st', fmt(now), 'p', pid)
  redis.call('SADD', P .. 'p:' .. pid .. ':r', id)
  if tonumber(o) > 0 then
    redis.call('ZADD', running, fmt(now + tonumber(o)), id)
  else
    redis.call('ZADD', running, '+inf', id)
  end
  return {id, f, a, attempt, o}
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
      local rank = pl.ranks[q]
      if rank then
        heap_push(rank, info.key, pid)
      end
    end
  else
    info.key = nil -- full: out of every ranking
  end
end

-- queued (already popped by the caller) -> inbox of pid, pending; load is pid's load before.
-- The idle ranking is updated from the known load (the score holds it): no inbox is counted.
-- When pid is the placer's own (pl.own: the acking processor, whose slot starts what it places
-- in the same call, its inbox being empty), the task starts at once instead: queued -> running,
-- no inbox, no wake-up token, not counted as assigned.
local function assign(pl, id, pid, load)
  local P = pl.P
  local own = pl.own
  if own and own.pid == pid and #own.tasks < own.want then
    own.tasks[#own.tasks + 1] = start_task(P, own.running, pid, pl.now, id)
    rerank_in_memory(pl, pid, load)
    return
  end
  redis.call('RPUSH', P .. 'p:' .. pid .. ':i', id)
  redis.call('HSET', P .. 't:' .. id, 's', 'assigned', 'p', pid)
  pl.assigned = pl.assigned + 1
  rerank_in_memory(pl, pid, load)
  redis.call('RPUSH', P .. 'p:' .. pid .. ':w', '1')
end

-- Move up to limit tasks from the head of queue q to chosen processors; pairs appended to out.
-- The processor is chosen before the task is popped: a task never leaves its queue without a place.
local function assign_from_queue(pl, q, limit, out)
  local qk = pl.P .. 'q:' .. q
  local n = 0
  while n < limit do
    local pid, load = pick(pl, q)
    if not pid then
      break
    end
    local id = redis.call('LPOP', qk)
    if not id then
      heap_push(pl.ranks[q], pl.known[pid].key, pid) -- not taken: back in its place
      break
    end
    assign(pl, id, pid, load)
    out[#out + 1] = id
    out[#out + 1] = pid
    n = n + 1
  end
  return n
end

-- Place up to limit tasks from the heads of the named queues, one task per queue per round, so
-- that one busy queue cannot starve the others (the rounds start at names[turn % #names + 1]);
-- pairs {id, pid} appended to out. Returns how many, and whether any of the queues still holds
-- tasks after (true when it may: a queue met no idle processor).
local function place_queued(pl, names, limit, out, turn)
  local active, left = {}, {}
  for k = 0, #names - 1 do
    local q = names[(turn + k) % #names + 1]
    local depth = redis.call('LLEN', pl.P .. 'q:' .. q)
    if depth > 0 then
      active[#active + 1] = q
      left[q] = depth
    end
  end
  local n = 0
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
  for _, depth in pairs(left) do
    if depth > 0 then
      return n, true
    end
  end
  return n, false
end

-- Settle a placing call: the rankings written back, one write for all its assignments' counters.
local function placed(pl)
  flush(pl)
  if pl.assigned > 0 then
    redis.call('HINCRBY', pl.stats, 'assigned', pl.assigned)
  end
  if pl.seqs > 0 then
    redis.call('HINCRBY', pl.stats, 'seq', pl.seqs)
  end
end

-- delayed -> queued (tail) for up to limit tasks that are due.
local function promote(P, delayed, now, limit)
  local ids = redis.call('ZRANGEBYSCORE', delayed, '-inf', fmt(now), 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local tk = P .. 't:' .. id
    redis.call('ZREM', delayed, id)
    redis.call('RPUSH', P .. 'q:' .. queue_of(P, id), id)
    redis.call('HSET', tk, 's', 'queued')
  end
  return #ids
end

-- pending -> running for processor pid (its inbox's oldest). Returns the task or nil.
local function start_next(P, stats, running, pid, now)
  local id = redis.call('LPOP', P .. 'p:' .. pid .. ':i')
  if not id then
    return nil
  end
  redis.call('HINCRBY', stats, 'assigned', -1)
  return start_task(P, running, pid, now, id)
end

-- Start up to want tasks for pid: its inbox's oldest first; then, with take, the heads of its
-- queues in turn while it has a free slot. Returns the started tasks and whether any came from a
-- queue (the processor's load then grew).
local function start_many(P, stats, running, pid, now, want, take, cap, qs)
  local tasks = {}
  while #tasks < want do
    local t = start_next(P, stats, running, pid, now)
    if not t then
      break
    end
    tasks[#tasks + 1] = t
  end
  trim_wake(P, pid)
  local took = false
  if take and #tasks < want then
    local pk = P .. 'p:' .. pid
    if not cap then
      cap, qs = unpack(redis.call('HMGET', pk, 'c', 'qs'))
    end
    local load = redis.call('SCARD', P .. 'p:' .. pid .. ':r') -- the pending list is empty here
    local names = split_commas(qs)
    local turn = redis.call('HINCRBY', pk, 'rr', 1)
    local dry = 0
    local k = 0
    -- start at a different queue each time, so that no queue of the processor starves another
    while #tasks < want and load < tonumber(cap) and dry < #names do
      local q = names[(turn + k) % #names + 1]
      k = k + 1
      local qid = redis.call('LPOP', P .. 'q:' .. q)
      if qid then
        dry = 0
        tasks[#tasks + 1] = start_task(P, running, pid, now, qid) -- queued -> running at once
        load = load + 1
        took = true
      else
        dry = dry + 1
      end
    end
  end
  return tasks, took
end

-- The task a slot's memo names, if pid still runs that attempt of it.
local function memo_task(P, pid, id, attempt)
  if id == '' then
    return nil
  end
  local f, a, s, p, n, o = unpack(redis.call('HMGET', P .. 't:' .. id, 'f', 'a', 's', 'p', 'n', 'o'))
  if s ~= 'running' or p ~= pid or n ~= attempt then
    return nil
  end
  return {id, f, a, n, o or '0'}
end

-- Started tasks as a memo keeps them: "id/attempt,id/attempt" (ids hold neither '/' nor ',').
local function started_memo(tasks)
  local parts = {}
  for _, t in ipairs(tasks) do
    parts[#parts + 1] = t[1] .. '/' .. t[4]
  end
  return table.concat(parts, ',')
end

-- The reply entries {'task', ...} for a memo's started tasks that pid still runs.
local function memo_started(P, pid, text, out)
  for id, attempt in string.gmatch(text or '', '([^/,]+)/([^,]+)') do
    local t = memo_task(P, pid, id, attempt)
    if t then
      out[#out + 1] = 'task'
      for _, v in ipairs(t) do
        out[#out + 1] = v
      end
    end
  end
  return out
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

-- The reply a request already got (a replay of a call whose reply was lost), or nil.
local function replayed(P, rid)
  local seen = redis.call('GET', P .. 'r:' .. rid)
  if seen then
    return cjson.decode(seen)
  end
  return nil
end

-- Keep the reply of a request that changed something, for its replays; returns the reply.
local function remember(P, rid, reply, changed)
  if changed then
    redis.call('SET', P .. 'r:' .. rid, cjson.encode(reply), 'PX', 30000)
  end
  return reply
end

-- Split a memo "rid|field|field..." when it belongs to request rid; nil otherwise.
local function memo_for(memo, rid)
  if not memo or string.sub(memo, 1, #rid + 1) ~= rid .. '|' then
    return nil
  end
  local parts = {}
  for part in string.gmatch(string.sub(memo, #rid + 2) .. '|', '([^|]*)|') do
    parts[#parts + 1] = part
  end
  return parts
end

-- Any state -> done | failed | cancelled; field/payload ('r' result or 'e' error) may be nil.
-- known: {w, g} read from the record already (waiter flag, group), or nil to read them here.
local function finish(P, stats, failed, id, state, now, keep_s, field, payload, known)
  local tk = P .. 't:' .. id
  if field then
    redis.call('HSET', tk, 's', state, 'ft', fmt(now), field, payload)
  else
    redis.call('HSET', tk, 's', state, 'ft', fmt(now))
  end
  redis.call('HDEL', tk, 'p')
  redis.call('HINCRBY', stats, state, 1)
  local bucket = P .. 'rate:' .. fmt(math.floor(now / 10000))
  if redis.call('HINCRBY', bucket, state, 1) == 1 then
    redis.call('EXPIRE', bucket, 120)
  end
  if state == 'failed' then
    redis.call('ZADD', failed, fmt(now), id)
  else
    redis.call('EXPIRE', tk, keep_s)
  end
  local w, g
  if known then
    w, g = known[1], known[2]
  else
    w, g = unpack(redis.call('HMGET', tk, 'w', 'g'))
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
      redis.call('XADD', P .. 'gs:' .. g, '*', 't', id, 's', state)
      local n, d, f, c = unpack(redis.call('HMGET', gk, 'n', 'done', 'failed', 'cancelled'))
      if (tonumber(d) or 0) + (tonumber(f) or 0) + (tonumber(c) or 0) >= tonumber(n) then
        redis.call('EXPIRE', gk, keep_s)
        redis.call('EXPIRE', P .. 'gs:' .. g, keep_s)
        redis.call('EXPIRE', P .. 'gi:' .. g, keep_s)
      end
    end
  end
end

-- queued again at the head (from <where>, no attempt used).
local function back_to_head(P, id)
  local tk = P .. 't:' .. id
  redis.call('LPUSH', P .. 'q:' .. queue_of(P, id), id)
  redis.call('HSET', tk, 's', 'queued')
  redis.call('HDEL', tk, 'p')
end

-- A started attempt ended without success (error, timeout, lease lost). The caller has already
-- taken id out of running and the processor's running set. later: retry through delayed with
-- exponential backoff; else retry at the head of the queue. Returns 'retry' or 'failed'.
local function attempt_ended(P, stats, delayed, failed, id, now, keep_s, error_json, later)
  local tk = P .. 't:' .. id
  local n, m, b = unpack(redis.call('HMGET', tk, 'n', 'm', 'b'))
  n = tonumber(n)
  b = b or DEFAULT_BACKOFF_MS
  if n >= tonumber(m or DEFAULT_MAX_ATTEMPTS) then
    finish(P, stats, failed, id, 'failed', now, keep_s, 'e', error_json)
    return 'failed'
  end
  redis.call('HSET', tk, 'e', error_json)
  if later then
    local backoff = math.min(tonumber(b) * math.pow(2, n - 1), 3600000)
    redis.call('ZADD', delayed, fmt(now + backoff), id)
    redis.call('HSET', tk, 's', 'delayed')
    redis.call('HDEL', tk, 'p')
  else
    back_to_head(P, id)
  end
  return 'retry'
end

-- Give back a processor's whole inbox and remove it. Pending tasks go back to the head of their
-- queues in order, without using an attempt; started ones used their attempt. Ids appended to out.
local function drain(P, stats, delayed, running, failed, procs, idle, pid, now, keep_s, reason, out)
  local ik = P .. 'p:' .. pid .. ':i'
  local rk = P .. 'p:' .. pid .. ':r'
  local pending = redis.call('LRANGE', ik, 0, -1)
  for i = #pending, 1, -1 do
    back_to_head(P, pending[i])
  end
  if #pending > 0 then
    redis.call('HINCRBY', stats, 'assigned', -#pending)
  end
  local started = redis.call('SMEMBERS', rk)
  table.sort(started) -- SMEMBERS order differs between servers: give back in a known order
  local err = '{"type":"LeaseLost","message":"' .. reason .. ' while running on processor ' .. pid .. '"}'
  for _, id in ipairs(started) do
    redis.call('ZREM', running, id)
    attempt_ended(P, stats, delayed, failed, id, now, keep_s, err, false)
  end
  for i = 1, #pending do
    out[#out + 1] = pending[i]
  end
  for _, id in ipairs(started) do
    out[#out + 1] = id
  end
  local qs = redis.call('HGET', P .. 'p:' .. pid, 'qs')
  if qs then
    for _, q in ipairs(split_commas(qs)) do
      redis.call('ZREM', P .. 'idle:' .. q, pid)
    end
  end
  redis.call('SREM', idle, pid)
  redis.call('ZREM', procs, pid)
  redis.call('DEL', ik, rk, P .. 'p:' .. pid, P .. 'p:' .. pid .. ':w')
  redis.call('HDEL', P .. 'cards', pid)
end
