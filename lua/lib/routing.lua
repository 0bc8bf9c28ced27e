--[[ lib/routing: whether a processor may run a task, by the labels the task requires of it.
  The twin of satisfies in luasched/core/kinds.py: the two agree on every input, type mismatches
  included (tests/scripts/test_requires_lua.py runs both on the same cases). And which kinds of
  processor may run a task: its queue's kinds (qk:<queue>) that have its task name (kn:<kind>)
  and whose labels meet its requires (the kind's definition in kinds), read at most once per
  call each.
  Includes: (none)

  A processor's labels are the "l" object of its kind's definition (kinds HASH), decoded: label
  name -> a string or a number. A task's requirement is its encoded requires, decoded: a list of
  {label, op, value}, sorted by label, op one of ==, !=, >=, >, <=, < or exists (value null).
  cjson reads every JSON number as a double; labels and values are within -2^53..2^53, so an
  integer is exact and 80 and 80.0 are the same number, as in Python.
]]

-- Whether labels meet every condition of conds (none: they do). exists: the label is present.
-- ==: present, of the same type (a number never equals a string) and equal. !=: the opposite
-- of ==, so an absent label matches. >=, >, <=, <: present, and the label and the value are
-- both numbers, compared as numbers; a string on either side does not match (Lua raises an
-- error comparing a string with a number: the types are checked first). An unknown op
-- matches nothing.
local function requires_met(labels, conds)
  for _, cond in ipairs(conds) do
    local have, op, want = labels[cond[1]], cond[2], cond[3]
    local ok = false
    if op == 'exists' then
      ok = have ~= nil
    elseif op == '==' or op == '!=' then
      local same = have ~= nil and type(have) == type(want) and have == want
      ok = same == (op == '==')
    elseif type(have) == 'number' and type(want) == 'number' then
      if op == '>=' then
        ok = have >= want
      elseif op == '>' then
        ok = have > want
      elseif op == '<=' then
        ok = have <= want
      elseif op == '<' then
        ok = have < want
      end
    end
    if not ok then
      return false
    end
  end
  return true
end

-- What one call learns of the kinds (router): each queue's kinds, each kind's task names asked
-- and labels, each requires decoded, each answer of capable.
local function router(P)
  return {P = P, kinds = {}, names = {}, labels = {}, conds = {}, answers = {}}
end

-- The kinds of the registered processors serving q (qk:<queue>), a list.
local function queue_kinds(rt, q)
  local ks = rt.kinds[q]
  if not ks then
    ks = {}
    local flat = redis.call('HGETALL', rt.P .. 'qk:' .. q) -- kind, count, ...
    for i = 1, #flat, 2 do
      ks[#ks + 1] = flat[i]
    end
    rt.kinds[q] = ks
  end
  return ks
end

-- Whether the processors of kind k may run a task named name that requires rq (encoded: '' for
-- nothing): k has the name, and its labels meet rq.
local function kind_can(rt, k, name, rq)
  local nk = k .. '\0' .. name
  local has = rt.names[nk]
  if has == nil then
    has = redis.call('SISMEMBER', rt.P .. 'kn:' .. k, name) == 1
      or redis.call('SISMEMBER', rt.P .. 'kn:' .. k, '') == 1 -- it knows no task: it takes any
    rt.names[nk] = has
  end
  if not has or rq == '' then
    return has
  end
  local labels = rt.labels[k]
  if labels == nil then
    local def = redis.call('HGET', rt.P .. 'kinds', k)
    labels = def and cjson.decode(def).l
    if type(labels) ~= 'table' then
      labels = {}
    end
    rt.labels[k] = labels
  end
  local conds = rt.conds[rq]
  if conds == nil then
    conds = cjson.decode(rq)
    rt.conds[rq] = conds
  end
  return requires_met(labels, conds)
end

-- The kinds serving q that may run a task named name requiring rq: a set, or nil when every
-- kind of q may (no need to choose among them); and how many may (0: no registered processor of
-- q can run it now).
local function capable(rt, q, name, rq)
  local key = q .. '\0' .. name .. '\0' .. rq
  local answer = rt.answers[key]
  if not answer then
    local ks = queue_kinds(rt, q)
    local can, n = {}, 0
    for _, k in ipairs(ks) do
      if kind_can(rt, k, name, rq) then
        can[k] = true
        n = n + 1
      end
    end
    answer = {n < #ks and can or nil, n}
    rt.answers[key] = answer
  end
  return answer[1], answer[2]
end

-- Keep qr in step for queue q: qr HASH <queue> -> '1' while some kind serving q (qk:<queue>)
-- lacks a task name ever submitted to q (qn:<queue>, a SET submit adds to; a kind whose
-- processors know no task lacks none). While it is absent, placement may take a plain queue's
-- tasks without reading their names (lib/placement). Called by submit when a name is new to q,
-- and by whatever changes the kinds serving q (a processor joining or leaving a kind):
-- O(names of q x kinds of q), on those rare events only.
local function route_flag(P, q)
  local names = redis.call('SMEMBERS', P .. 'qn:' .. q)
  local flat = redis.call('HGETALL', P .. 'qk:' .. q)
  local mixed = false
  for i = 1, #flat, 2 do
    local kn = P .. 'kn:' .. flat[i]
    if redis.call('SISMEMBER', kn, '') == 0 then
      for _, name in ipairs(names) do
        if redis.call('SISMEMBER', kn, name) == 0 then
          mixed = true
          break
        end
      end
    end
    if mixed then
      break
    end
  end
  if mixed then
    redis.call('HSET', P .. 'qr', q, '1')
  else
    redis.call('HDEL', P .. 'qr', q)
  end
end

-- Whether any processor serving queue q may take its next task without the task being read: q is
-- in plain mode (lc.laned: then it holds no task with requires, lib/lanes lane_of) and not
-- routed (qr: every kind serving it has every task name submitted to it). Read once per call.
local function unrouted(P, lc, q)
  if lc.laned[q] == nil then -- no placing call turns a plain queue into lanes mode
    lc.laned[q] = redis.call('EXISTS', P .. 'lanes:' .. q) == 1
  end
  if lc.laned[q] then
    return false
  end
  lc.unrouted = lc.unrouted or {}
  local u = lc.unrouted[q]
  if u == nil then
    u = redis.call('HEXISTS', P .. 'qr', q) == 0
    lc.unrouted[q] = u
  end
  return u
end
