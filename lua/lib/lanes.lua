--[[ lib/lanes: which waiting task of a queue goes next (priorities, keys and their weights,
  limiters, pauses by key). Used by every placing script and by every script that puts a task
  back in its queue or ends its attempt.
  Includes: fields, util

  A lane is the tasks of one queue with one priority (0..9, lower first) and one key (or none),
  FIFO. Its name is '<p>:<bytes in q>:<q>', then ':<key>' for a keyed lane: the queue's length
  makes it unambiguous although queue names and keys may hold ':'. The lane of priority 5 without
  a key is the queue's list q:<queue> itself; every other lane is the list ln:<lane>.

  A queue whose waiting tasks all sit in q:<queue> and name no limiter is plain: its tasks are
  placed by LPOP, as if lanes did not exist (tasks that use no policy pay nothing). A queue is in
  lanes mode while lanes:<queue> exists: the ZSET of its non-empty lanes, the plain one too, each
  scored by the tag it had when it last left the ready index (0 until then). Each lane in it is in
  exactly one of these places:
    rdy:<p>:<q>  ZSET  ready lanes of priority p -> virtual start tag (weighted fair queueing);
                       lvl:<q> ZSET holds each p whose rdy is not empty (score p)
    lpk:<name>   ZSET  lanes whose head waits for a running count of limiter <name> -> its priority
                       * 1e12 + its tag (a freed count goes to the most urgent lane first)
    blk          ZSET  lanes whose head waits for a limiter's rate -> the ms it becomes eligible
    kp:<key>     SET   lanes of a paused key, out of the index until the key is resumed
  vt HASH '<p>:<q>' -> the virtual time of that queue and level: the tag of the lane last served.
  Serving a lane moves its tag on by 1 / its key's weight (weights HASH key -> weight; 1 when
  absent or keyless). A lane that becomes ready joins at the later of the virtual time and its
  own kept tag: a new lane (an idle key) at the virtual time, so it banks no credit; a lane back
  from a limiter, a rate or a paused key where it left, or at the virtual time if that has passed
  it. So whether a placing call met a held-back lane (and moved it out of the ready index) or not
  changes nothing in the order: the tests' model keeps no index, only each lane's tag.
  lq HASH <queue> -> how many tasks wait in its lanes other than q:<queue> (counts read it).
  qconf HASH <queue> -> priority aging ms: a waiting task counts one level more urgent for every
  that many ms it has waited (since it was created); absent: strict priorities.

  Limiters: lim HASH name -> "rate per_ms burst max_running" ('-' for none); a name ending in '*'
  is a pattern, listed in limpat SET too, giving the limiter of every name with that prefix that
  has none of its own (the longest pattern wins). lr HASH name -> how many attempts hold a
  running count of it (field gone at 0): taken by the placing script, kept in the task's
  TASK_HELD, released by exactly the scripts that end the attempt or give the assignment back.
  lt:<name> STRING the rate's theoretical arrival time (GCRA, ms); it expires a minute after that
  time, once it reads the same as absent (a full burst), so no reaper is needed.
  lfree SET limiters whose released counts let lanes go: dispatch lets more go while they have
  free counts and lanes wait (a lane let go may not be placed: its queue has no processor now).
]]

local function num(x)
  return string.format('%.17g', x)
end

local function lane_name(q, p, key)
  local L = p .. ':' .. #q .. ':' .. q
  if key then
    return L .. ':' .. key
  end
  return L
end

-- The queue, priority and key (nil: none) of lane L.
local function lane_parts(L)
  local p, n, at = string.match(L, '^(%d):(%d+):()')
  local stop = at + tonumber(n) - 1
  local key = nil
  if #L > stop then
    key = string.sub(L, stop + 2)
  end
  return string.sub(L, at, stop), p, key
end

local function lane_list(P, L, q, p, key)
  if p == '5' and not key then
    return P .. 'q:' .. q
  end
  return P .. 'ln:' .. L
end

-- What a task's record says of its lane: queue, priority, key (nil: none), limits (nil: none).
-- (limits '' when it has none but requires labels: it needs lanes mode all the same, so that a
-- queue in plain mode holds no task with requires and places without reading them: lib/placement)
local function lane_of(C, id)
  local q, p, k, l, rq = unpack(redis.call('HMGET', C.prefix .. 't:' .. id, TASK_QUEUE, TASK_PRIORITY, TASK_KEY,
    TASK_LIMITS, TASK_REQUIRES))
  return q or DEFAULT_QUEUE, p or '5', k or nil, l or (rq and '') or nil
end

-- What one call knows of the policies, read at most once each: the pauses (the set lib/util reads),
-- weights, limiters, aging bounds, rate states, running counts.
local function policy(C, paused)
  return {C = C, P = C.prefix, paused = paused, weights = {}, specs = {}, aging = {}, pats = nil, tats = {},
          laned = {}, due = false, deadlines = nil}
end

local function weight_of(lc, key)
  if not key then
    return 1
  end
  local w = lc.weights[key]
  if not w then
    w = tonumber(redis.call('HGET', lc.P .. 'weights', key) or '1') or 1
    lc.weights[key] = w
  end
  return w
end

-- The longest of the patterns pats ('prefix*') that matches name, or nil.
local function pattern_for(pats, name)
  local best = nil
  for _, pat in ipairs(pats) do
    if string.sub(name, 1, #pat - 1) == string.sub(pat, 1, -2) and (not best or #pat > #best) then
      best = pat
    end
  end
  return best
end

-- The limiter governing name: {rate, per, burst, max} (nil fields: none), or false when neither
-- name nor a pattern matching it is a limiter.
local function limiter(lc, name)
  local s = lc.specs[name]
  if s ~= nil then
    return s
  end
  local P = lc.P
  local raw = redis.call('HGET', P .. 'lim', name)
  if not raw then
    if not lc.pats then
      lc.pats = redis.call('SMEMBERS', P .. 'limpat')
    end
    local best = pattern_for(lc.pats, name)
    if best then
      raw = redis.call('HGET', P .. 'lim', best)
    end
  end
  s = false
  if raw then
    local r, per, b, m = string.match(raw, '^(%S+) (%S+) (%S+) (%S+)$')
    s = {rate = tonumber(r), per = tonumber(per), burst = tonumber(b) or 1, max = tonumber(m)}
  end
  lc.specs[name] = s
  return s
end

local function tat_of(lc, name, now)
  local t = lc.tats[name]
  if not t then
    t = tonumber(redis.call('GET', lc.P .. 'lt:' .. name) or '') or now
    lc.tats[name] = t
  end
  return t
end

local function running_of(lc, name)
  return tonumber(redis.call('HGET', lc.P .. 'lr', name) or '0')
end

-- Whether a task naming limiters lm (comma-joined) may be placed at now: nil when it may, else
-- 'max' and the limiter whose running count is full, or 'rate' and the ms it becomes eligible.
local function held_back(lc, lm, now)
  for name in string.gmatch(lm, '[^,]+') do
    local s = limiter(lc, name)
    if s then
      if s.max and running_of(lc, name) >= s.max then
        return 'max', name
      end
      if s.rate then
        local at = tat_of(lc, name, now) - (s.burst - 1) * s.per / s.rate
        if at > now then
          return 'rate', at
        end
      end
    end
  end
  return nil
end

-- Task id, naming limiters lm, is placed at now: it takes a running count of each limiter with a
-- max_running (recorded in its TASK_HELD) and one emission of each rate.
local function hold(lc, id, lm, now)
  local P = lc.P
  local held = {}
  for name in string.gmatch(lm, '[^,]+') do
    local s = limiter(lc, name)
    if s then
      if s.max then
        redis.call('HINCRBY', P .. 'lr', name, 1)
        held[#held + 1] = name
      end
      if s.rate then
        local tat = math.max(tat_of(lc, name, now), now) + s.per / s.rate
        lc.tats[name] = tat
        -- kept a minute past the time it reads the same as absent: a caller's clock (now_ms) may
        -- run behind the server's, which times the expiry
        redis.call('SET', P .. 'lt:' .. name, num(tat), 'PX', math.ceil(tat - now) + 60000)
      end
    end
  end
  if #held > 0 then
    redis.call('HSET', P .. 't:' .. id, TASK_HELD, table.concat(held, ','))
  end
end

-- Lane L is ready: indexed at its level at tag (nil: the tag it kept in lanes:<q>), or at the
-- level's virtual time when later.
local function activate(C, L, tag)
  local P = C.prefix
  local q, p = lane_parts(L)
  local v = tonumber(redis.call('HGET', P .. 'vt', p .. ':' .. q) or '0')
  if not tag then
    tag = tonumber(redis.call('ZSCORE', P .. 'lanes:' .. q, L) or '0')
  end
  if tag < v then
    tag = v
  end
  redis.call('ZADD', P .. 'rdy:' .. p .. ':' .. q, num(tag), L)
  redis.call('ZADD', P .. 'lvl:' .. q, p, p)
end

-- Lane L left the ready index of level p of queue q: the level leaves lvl when it is empty.
local function level_left(P, q, p)
  if redis.call('EXISTS', P .. 'rdy:' .. p .. ':' .. q) == 0 then
    redis.call('ZREM', P .. 'lvl:' .. q, p)
  end
end

-- A parked lane's score in lpk:<name>: priority first (a freed count goes to the most urgent
-- lane), then its tag (rounded: the exact one is kept in lanes:<q>).
local PARKED = 1e12

local function parked_score(p, tag)
  return num(tonumber(p) * PARKED + math.min(tag, PARKED - 1))
end

-- Up to n lanes waiting for a running count of limiter name are ready again (n nil: all), and a
-- scheduler loop is woken to place them.
local function unpark(C, name, n)
  local pk = C.prefix .. 'lpk:' .. name
  while n == nil or n > 0 do
    local flat = redis.call('ZPOPMIN', pk, math.min(n or 100, 100))
    for i = 1, #flat, 2 do
      activate(C, flat[i], nil)
    end
    if #flat > 0 then
      wake_scheduler(C)
    end
    if #flat < 200 then
      return
    end
    if n then
      n = n - 100
    end
  end
end

-- How many lanes a released running count of name lets go: as many as it has free counts; all
-- when no attempt holds one any more (no lane waits for a count that nothing will release) or
-- name is no longer limited.
local function release_counts(C, lc, name, running)
  if redis.call('EXISTS', C.prefix .. 'lpk:' .. name) == 0 then
    return
  end
  local s = limiter(lc, name)
  if s and s.max and running > 0 then
    local free = s.max - running
    if free > 0 then
      unpark(C, name, free)
      -- a lane let go may not be placed (its queue has no processor now): dispatch looks again
      redis.call('SADD', C.prefix .. 'lfree', name)
    end
  else
    unpark(C, name, nil)
  end
end

-- Limiters with free running counts that let lanes go (lfree): while lanes still wait for them,
-- as many more go as they have free counts (those let go before may not have been placed).
-- At most limit limiters per call; a limiter leaves lfree once it is full or nothing waits.
local function counts_free(C, limit)
  local P = C.prefix
  local names = redis.call('SRANDMEMBER', P .. 'lfree', limit)
  if #names == 0 then
    return
  end
  local lc = policy(C, nil)
  for _, name in ipairs(names) do
    local s = limiter(lc, name)
    local free = s and s.max and s.max - running_of(lc, name) or 0
    if free > 0 and redis.call('EXISTS', P .. 'lpk:' .. name) == 1 then
      unpark(C, name, free)
    else
      redis.call('SREM', P .. 'lfree', name)
    end
  end
end

-- The attempt (or assignment) of task id ended: the running counts it held are released, and
-- lanes that waited for them are ready again. h: its record's TASK_HELD when the caller read it
-- already (false: none), nil to read it here. Returns whether it held any.
local function release(C, id, h)
  local P = C.prefix
  local tk = P .. 't:' .. id
  if h == nil then
    h = redis.call('HGET', tk, TASK_HELD)
  end
  if not h then
    return false
  end
  redis.call('HDEL', tk, TASK_HELD)
  local lc = policy(C, nil)
  for name in string.gmatch(h, '[^,]+') do
    local n = redis.call('HINCRBY', P .. 'lr', name, -1)
    if n <= 0 then
      redis.call('HDEL', P .. 'lr', name)
      n = 0
    end
    release_counts(C, lc, name, n)
  end
  return true
end

-- Lane L got a new head (a task given back, or its head cancelled): a lane held back by its old
-- head is ready again. old_lm: the old head's limits (nil: none), where it may be parked.
local function unblock(C, L, old_lm)
  local P = C.prefix
  if redis.call('ZREM', P .. 'blk', L) == 1 then
    activate(C, L, nil)
    return
  end
  if old_lm then
    for name in string.gmatch(old_lm, '[^,]+') do
      if redis.call('ZREM', P .. 'lpk:' .. name, L) == 1 then
        activate(C, L, nil)
        return
      end
    end
  end
end

-- Lane L (of queue q) entered lanes mode's index: the plain lane too, the first time.
local function lane_joins(C, L, q, was)
  local P = C.prefix
  if not was then
    local plain = lane_name(q, '5', nil)
    if L ~= plain and redis.call('LLEN', P .. 'q:' .. q) > 0 then
      redis.call('ZADD', P .. 'lanes:' .. q, 0, plain)
      activate(C, plain, 0)
    end
  end
  redis.call('ZADD', P .. 'lanes:' .. q, 0, L)
  activate(C, L, 0)
end

-- Task id waits again: at the tail of its lane, or (head) at its head, given back with its place
-- in time. q, p, key, lm: its lane_of.
local function enqueue(C, id, q, p, key, lm, head)
  local P = C.prefix
  local lanes = P .. 'lanes:' .. q
  local plain = p == '5' and not key
  local was = redis.call('EXISTS', lanes) == 1
  local L = lane_name(q, p, key)
  local lk = lane_list(P, L, q, p, key)
  local n
  if head then -- each command spelled out: the ACL test reads them from the source
    n = redis.call('LPUSH', lk, id)
  else
    n = redis.call('RPUSH', lk, id)
  end
  if plain and not lm and not was then
    return -- a plain queue (above): no lane to keep
  end
  if not plain then
    redis.call('HINCRBY', P .. 'lq', q, 1)
  end
  if not was or n == 1 then
    lane_joins(C, L, q, was)
  elseif head then
    local old = redis.call('LINDEX', lk, 1)
    unblock(C, L, old and redis.call('HGET', P .. 't:' .. old, TASK_LIMITS) or nil)
  end
end

-- Whether queue q may have a task to place now (plain: any; in lanes mode: a ready lane).
local function has_ready(C, q)
  local P = C.prefix
  if redis.call('EXISTS', P .. 'lanes:' .. q) == 1 then
    return redis.call('EXISTS', P .. 'lvl:' .. q) == 1
  end
  return redis.call('LLEN', P .. 'q:' .. q) > 0
end

local function key_paused(paused, q, key)
  return paused ~= nil and (paused['k:' .. key] ~= nil or paused['qk:' .. #q .. ':' .. q .. ':' .. key] ~= nil)
end

-- Which level of queue q serves next: the lowest with a ready lane; with priority aging, the
-- lowest after each level's head task counts one level lower per aging bound it has waited.
local function level_of(lc, q, now)
  local P = lc.P
  local aging = lc.aging[q]
  if aging == nil then
    aging = tonumber(redis.call('HGET', P .. 'qconf', q) or '') or false
    lc.aging[q] = aging
  end
  if not aging then
    return redis.call('ZRANGE', P .. 'lvl:' .. q, 0, 0)[1]
  end
  local best, rank = nil, nil
  for _, p in ipairs(redis.call('ZRANGE', P .. 'lvl:' .. q, 0, -1)) do
    local L = redis.call('ZRANGE', P .. 'rdy:' .. p .. ':' .. q, 0, 0)[1]
    if L then
      local _, _, key = lane_parts(L)
      local id = redis.call('LINDEX', lane_list(P, L, q, p, key), 0)
      local ct = id and tonumber(redis.call('HGET', P .. 't:' .. id, TASK_CREATED_MS)) or now
      local r = tonumber(p) - math.floor(math.max(now - ct, 0) / aging)
      if not rank or r < rank then
        best, rank = p, r
      end
    end
  end
  return best
end

-- The next task of queue q in lanes mode, not yet taken: {id, L, lk, q, p, key, tag, lm}, or nil
-- and whether it stopped early (more lanes than a call looks at were held back: the caller wakes
-- a scheduler loop to look again). A lane whose head is held back leaves the ready index on the
-- way: to the limiter's parked lanes, to the lanes blocked by time, or to its paused key's.
local function next_in_lanes(lc, q, now)
  local P = lc.P
  for _ = 1, 64 do
    local p = level_of(lc, q, now)
    if not p then
      return nil, false
    end
    local rk = P .. 'rdy:' .. p .. ':' .. q
    local top = redis.call('ZRANGE', rk, 0, 0, 'WITHSCORES')
    local L, tag = top[1], tonumber(top[2])
    local _, _, key = lane_parts(L)
    local lk = lane_list(P, L, q, p, key)
    local why, what, lm = nil, nil, nil
    if key and key_paused(lc.paused, q, key) then
      why = 'key'
    end
    local id = not why and redis.call('LINDEX', lk, 0)
    if id then
      lm = redis.call('HGET', P .. 't:' .. id, TASK_LIMITS)
      if lm then
        why, what = held_back(lc, lm, now)
      end
      if not why then
        return {id = id, L = L, lk = lk, q = q, p = p, key = key, tag = tag, lm = lm}, false
      end
    end
    redis.call('ZREM', rk, L)
    if not why then -- an empty lane in the index (never left so): out of lanes mode's index too
      redis.call('ZREM', P .. 'lanes:' .. q, L)
    else -- it keeps its tag, to rejoin where it left
      redis.call('ZADD', P .. 'lanes:' .. q, num(tag), L)
    end
    if why == 'key' then
      redis.call('SADD', P .. 'kp:' .. key, L)
    elseif why == 'max' then
      redis.call('ZADD', P .. 'lpk:' .. what, parked_score(p, tag), L)
    elseif why == 'rate' then
      redis.call('ZADD', P .. 'blk', math.ceil(what), L)
      if redis.call('ZRANGE', P .. 'blk', 0, 0)[1] == L then
        wake_scheduler(lc.C) -- the earliest: a scheduler loop learns from dispatch when to look again
      end
    end
    level_left(P, q, p)
  end
  return nil, true
end

-- Lane L of a queue in lanes mode lost a task (taken, or cancelled: id, at the head when
-- head_lm ~= nil, its limits then); when it is empty it leaves every index.
local function lane_lost(C, L, q, p, key, lk, head_lm)
  local P = C.prefix
  if lk ~= P .. 'q:' .. q then
    if redis.call('HINCRBY', P .. 'lq', q, -1) <= 0 then
      redis.call('HDEL', P .. 'lq', q)
    end
  end
  if redis.call('LLEN', lk) > 0 then
    return false
  end
  redis.call('ZREM', P .. 'lanes:' .. q, L)
  if redis.call('ZREM', P .. 'rdy:' .. p .. ':' .. q, L) == 1 then
    level_left(P, q, p)
  end
  redis.call('ZREM', P .. 'blk', L)
  if key then
    redis.call('SREM', P .. 'kp:' .. key, L)
  end
  if head_lm then
    for name in string.gmatch(head_lm, '[^,]+') do
      redis.call('ZREM', P .. 'lpk:' .. name, L)
    end
  end
  return true
end

-- Take t (from next_in_lanes) at now: out of its lane, its limiters held, its lane's tag moved on
-- by 1 / its key's weight (or the lane gone when empty), the level's virtual time at its tag.
-- behind: take instead the task id, with limiters lm, that waits behind t in the same lane (the
-- lane's turn passes all the same).
local function take_lane(lc, t, now, behind, lm)
  local P = lc.P
  if behind then
    redis.call('LREM', t.lk, 1, behind)
    if lm then
      hold(lc, behind, lm, now)
    end
  else
    redis.call('LPOP', t.lk)
    if t.lm then
      hold(lc, t.id, t.lm, now)
    end
  end
  redis.call('HSET', P .. 'vt', t.p .. ':' .. t.q, num(t.tag))
  if not lane_lost(lc.C, t.L, t.q, t.p, t.key, t.lk, nil) then
    redis.call('ZADD', P .. 'rdy:' .. t.p .. ':' .. t.q, num(t.tag + 1 / weight_of(lc, t.key)), t.L)
  end
end

-- Rate-blocked lanes eligible by upto (a score bound: the formatted now for those whose time came)
-- are ready again, at most limit of them (-1: all).
local function lanes_due(C, upto, limit)
  local P = C.prefix
  local due = redis.call('ZRANGEBYSCORE', P .. 'blk', '-inf', upto, 'LIMIT', 0, limit)
  for _, L in ipairs(due) do
    redis.call('ZREM', P .. 'blk', L)
    activate(C, L, nil)
  end
end

-- A limiter's rate changed or was removed: every lane a rate holds back is ready again (each is
-- held back again when a placing call meets it and a rate still holds it). O(those lanes), once.
local function rates_changed(C)
  lanes_due(C, '+inf', -1)
end

-- Once per call, when it meets a queue in lanes mode: the lanes a rate held back whose time came
-- are ready again (placing calls other than dispatch follow the same rules; plain queues pay nothing).
local function due_once(lc, now)
  if not lc.due then
    lc.due = true
    lanes_due(lc.C, fmt(now), 100)
  end
end

-- The deadline of task id (ms, as stored) when it has come, else nil: a task in the deadline
-- index exp (its TASK_EXPIRES_MS) is never placed or started after it. The earliest deadline is
-- read once per call (lc.deadlines: whether it has come): while it is ahead, no task is looked up.
local function deadline_due(lc, id, now)
  if lc.deadlines == nil then
    local first = redis.call('ZRANGE', lc.P .. 'exp', 0, 0, 'WITHSCORES')[2]
    lc.deadlines = first ~= nil and tonumber(first) <= now
  end
  if not lc.deadlines then
    return nil
  end
  local dx = redis.call('ZSCORE', lc.P .. 'exp', id)
  if dx and tonumber(dx) <= now then
    return dx
  end
  return nil
end

-- How deep a placing call looks into a lane past tasks that no registered processor can run.
local ROUTE_WINDOW = 32

-- The next task of queue q to place, not yet taken: the head of the lane lanes mode chooses (of
-- q itself when plain); or, when no registered processor can run that head (route: task id ->
-- the kinds that may run it, nil for any, and how many: lib/routing capable), the first task
-- within ROUTE_WINDOW behind it in the same lane that one can. The tasks it passes keep their
-- places, and wait for a processor that can run them (explain says so). Returns c = {id, lk,
-- depth (its place in its list), t (lanes mode: the lane from next_in_lanes), lm (its limits)}
-- and the kinds that may run it; whether lanes were left unlooked at (see next_in_lanes); and
-- dx when c's deadline has come (c already left its list: the caller ends it). nil c: nothing to
-- place now (no task; nothing runnable near the head; or the task found is held back by a
-- limiter of its own).
local function next_routable(lc, q, now, route)
  local P = lc.P
  local laned = lc.laned[q]
  if laned == nil then -- read once per call: no placing call turns a plain queue into lanes mode
    laned = redis.call('EXISTS', P .. 'lanes:' .. q) == 1
    lc.laned[q] = laned
  end
  local t, more, lk, id = nil, false, P .. 'q:' .. q, nil
  if laned then
    due_once(lc, now)
    t, more = next_in_lanes(lc, q, now)
    if not t then
      return nil, nil, more, nil
    end
    id, lk = t.id, t.lk
  else
    id = redis.call('LINDEX', lk, 0)
    if not id then
      return nil, nil, false, nil
    end
  end
  local depth = 0
  local can, n = route(id)
  while n == 0 do
    if depth >= ROUTE_WINDOW then
      return nil, nil, more, nil
    end
    depth = depth + 1
    id = redis.call('LINDEX', lk, depth)
    if not id then
      return nil, nil, more, nil
    end
    can, n = route(id)
  end
  local c = {id = id, lk = lk, depth = depth, t = t, lm = t and t.lm or nil}
  if depth > 0 and t then -- behind the head, whose limits next_in_lanes checked: its own
    c.lm = redis.call('HGET', P .. 't:' .. id, TASK_LIMITS) or nil
    if c.lm and held_back(lc, c.lm, now) then
      return nil, nil, more, nil
    end
  end
  local dx = deadline_due(lc, id, now)
  if dx then -- out of its list as a cancel takes it
    if depth == 0 then
      redis.call('LPOP', lk)
    else
      redis.call('LREM', lk, 1, id)
    end
    if t then
      lane_lost(lc.C, t.L, t.q, t.p, t.key, lk, depth == 0 and t.lm or nil)
    end
    return c, can, false, dx
  end
  return c, can, more, nil
end

-- Take c (from next_routable) at now: out of its queue or lane (lanes mode: as take_lane).
local function take_routable(lc, c, now)
  if c.t then
    take_lane(lc, c.t, now, c.depth > 0 and c.id or nil, c.lm)
  elseif c.depth == 0 then
    redis.call('LPOP', c.lk)
  else
    redis.call('LREM', c.lk, 1, c.id)
  end
end

-- Task id (queued, lane q p key) leaves its queue without being placed (cancelled).
local function dequeue(C, id, q, p, key)
  local P = C.prefix
  if redis.call('EXISTS', P .. 'lanes:' .. q) == 0 then
    redis.call('LREM', P .. 'q:' .. q, 1, id)
    return
  end
  local L = lane_name(q, p, key)
  local lk = lane_list(P, L, q, p, key)
  local head = redis.call('LINDEX', lk, 0) == id
  local head_lm = head and redis.call('HGET', P .. 't:' .. id, TASK_LIMITS) or nil
  redis.call('LREM', lk, 1, id)
  if not lane_lost(C, L, q, p, key, lk, head_lm) and head then
    unblock(C, L, head_lm) -- a new head: where the old one was held back, this one may go
  end
end
