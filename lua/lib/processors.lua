--[[ lib/processors: a processor's liveness, card, idle rankings and wake list, kept in step with its load.
  Includes: fields, util, routing
]]
-- A processor is alive while its lease deadline is not in the past.
local function alive(C, pid)
  local deadline = redis.call('ZSCORE', C.procs, pid)
  return deadline ~= false and deadline ~= nil and tonumber(deadline) >= C.now
end

-- The same from the record's dl field, read with other fields; a record written before dl
-- existed (no dl) asks the registry.
local function lease_ok(C, pid, dl, cap)
  if dl then
    return tonumber(dl) >= C.now
  end
  return cap ~= false and cap ~= nil and alive(C, pid)
end

-- A processor's card in the cards HASH: what placing a task needs of it, "capacity
-- lease-deadline-ms queues", written wherever its record's c, dl or qs change.
local function write_card(C, pid, cap, dl, qs)
  if cap and dl and qs then
    redis.call('HSET', C.cards, pid, cap .. ' ' .. dl .. ' ' .. qs)
  end
end

-- A processor's load: its inbox (pending and running) and its stuck slots (a slot still in the
-- call of an attempt that reap ended past its timeout: not free until it acks). stuck is the
-- record's PROC_STUCK as read (nil or false: none).
local function load_of(C, pid, pending, stuck)
  return pending + redis.call('SCARD', C.prefix .. 'p:' .. pid .. ':r') + (tonumber(stuck) or 0)
end

-- The idle ranking of queue q for the processors of kind k (a ZSET: see lib/util).
local function rank_key(P, k, q)
  return P .. 'ik:' .. k .. ':' .. q
end

-- Keep the idle rankings and the idle set in step with the processor's load. Returns its pending
-- count (nil for a processor not registered). cap, qs, stuck and k (its kind) as read from its
-- record (a caller that gives cap gives the four), or nil to read them here.
local function rerank(C, pid, cap, qs, stuck, k)
  local P = C.prefix
  if not cap then
    cap, qs, stuck, k = unpack(redis.call('HMGET', P .. 'p:' .. pid, PROC_CAPACITY, PROC_QUEUES, PROC_STUCK,
      PROC_KIND))
  end
  if not cap then
    return
  end
  local pending = redis.call('LLEN', P .. 'p:' .. pid .. ':i')
  local load = load_of(C, pid, pending, stuck)
  if load < tonumber(cap) then
    local seq = redis.call('HINCRBY', C.stats, STAT_SEQ, 1)
    local score = fmt(load * TWO40 + seq)
    for _, q in ipairs(split_commas(qs)) do
      redis.call('ZADD', rank_key(P, k, q), score, pid)
    end
    redis.call('SADD', C.idle, pid)
  else
    for _, q in ipairs(split_commas(qs)) do
      redis.call('ZREM', rank_key(P, k, q), pid)
    end
    redis.call('SREM', C.idle, pid)
  end
  return pending
end

-- Tokens in a processor's wake list never outnumber its pending tasks.
-- The tokens first: a slot that BLPOPped took the one its task was pushed, so mostly none are left.
local function trim_wake(C, pid)
  local P = C.prefix
  local wk = P .. 'p:' .. pid .. ':w'
  local tokens = redis.call('LLEN', wk)
  if tokens == 0 then
    return
  end
  local pending = redis.call('LLEN', P .. 'p:' .. pid .. ':i')
  if tokens > pending then
    if pending == 0 then
      redis.call('DEL', wk)
    else
      redis.call('LTRIM', wk, 0, pending - 1)
    end
  end
end

-- Processor pid (serving the comma-joined queues qs) is of kind k from now on, defined by def
-- (luasched/core/kinds): counted in kindn and in qk:<queue> of each of its queues, its record's
-- PROC_KIND set; a new kind's task names go to kn:<kind>, a SET placement asks ('' alone: a kind
-- whose processors know no task, driven by hand, takes any task name).
local function kind_join(C, pid, k, def, qs)
  local P = C.prefix
  if redis.call('HSETNX', P .. 'kinds', k, def) == 1 then -- a new kind: its task names, as a SET
    local names = cjson.decode(def).n
    if type(names) ~= 'table' or #names == 0 then
      names = {''} -- it knows no task (a processor driven by hand): it takes any ('' names none)
    end
    call_chunked('SADD', P .. 'kn:' .. k, names)
  end
  redis.call('HINCRBY', P .. 'kindn', k, 1)
  for _, q in ipairs(split_commas(qs)) do
    if redis.call('HINCRBY', P .. 'qk:' .. q, k, 1) == 1 then -- a kind new to q: routing may change
      route_flag(P, q)
    end
  end
  redis.call('HSET', P .. 'p:' .. pid, PROC_KIND, k)
end

-- Processor pid leaves its kind k (as its record says; nil or '': none) and its queues qs: the
-- counts go down, a field at 0 goes, and the kind's definition with its last processor.
local function kind_leave(C, pid, k, qs)
  if not k or k == '' then
    return
  end
  local P = C.prefix
  if redis.call('HINCRBY', P .. 'kindn', k, -1) <= 0 then
    redis.call('HDEL', P .. 'kindn', k)
    redis.call('HDEL', P .. 'kinds', k)
    redis.call('DEL', P .. 'kn:' .. k)
  end
  for _, q in ipairs(split_commas(qs or '')) do
    if redis.call('HINCRBY', P .. 'qk:' .. q, k, -1) <= 0 then
      redis.call('HDEL', P .. 'qk:' .. q, k)
      route_flag(P, q) -- the last of its kind left q: routing may change
    end
  end
  redis.call('HDEL', P .. 'p:' .. pid, PROC_KIND)
end
