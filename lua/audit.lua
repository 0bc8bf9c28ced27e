--[[ audit: the frame of an audit, one consistent snapshot of everything but the big places
  (read-only, O(queues + lanes + processors' inboxes + running tasks), never O(queued tasks))
  The first of an audit's bounded calls (luasched/core/flows.py audit): the counters, the sizes
  of the queues, the delayed set and the dead letters, and in full every processor with its inbox,
  the running tasks, the idle rankings and the cards, with the records of the tasks held. The
  members of the big places are read afterwards in slices by audit_slice, each slice with its
  records in one call. luasched/core/audit.py decides whether the invariant holds.
  Includes: fields, util, processors, lanes, snapshot
  KEYS[1..9] the fixed keys (see lib/util): uses all but wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)
  Returns {now, stats (flat), {{queue, length}...}, delayed count, {running id, deadline...},
           failed count, {{pid, deadline, {record flat}, {pending ids}, {running ids}}...},
           {{queue, {{kind, {pid, score...}}...}}...} (the idle rankings ik:<kind>:<queue> of every
           kind counted in kindn or named by a processor's record), {idle pids}, {{id, s, q, p, n, m}...} (of the held
           tasks), {pid, card...} (the cards HASH, flat), {scope, ms...} (the pauses, flat),
           {{queue, lanes mode 0|1, {levels in lvl}, {{p, {lanes in rdy:<p>}}...} (the non-empty
             ones), {{lane, length, in rdy 0|1, in blk 0|1, in kp 0|1, {limiters it is parked on}}...},
             tasks in its other lanes (lq)}...} (lib/lanes), {lane, ms...} (blk, flat),
           {name, count...} (lr, flat), {name, spec...} (lim, flat), {patterns} (limpat),
           {queue, count...} (qd, flat), {queue, count...} (the delayed tasks' queues counted
           here, flat, when at most SMALL_DELAYED wait: else {} and only qd's sum is checked),
           {{id, deadline, state, its record's deadline}...} (the deadline index exp, when it holds
           at most SMALL_DELAYED: else {}), {kind, definition...} (kinds, flat), {kind, count...}
           (kindn, flat), {{queue, {kind, count...}, {task names}, in qr 0|1}...} (qk:<queue>,
           qn:<queue> and the routing flag of every queue),
           {{kind, {task names}}...} (kn:<kind> of every kind counted or named by a record),
           {size, {{key, id, state, the key its record holds until finished, until started}...}}
           (the unique index uq, lib/unique: its entries when it holds at most SMALL_DELAYED, else {})}
  Invariant: moves no task, writes nothing.
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
local held = {}
local function note(list)
  for _, id in ipairs(list) do
    held[#held + 1] = id
  end
  return list
end

local names = redis.call('SMEMBERS', C.queues)
table.sort(names)
local run = redis.call('ZRANGE', C.running, 0, -1, 'WITHSCORES')
local ps = {}
local kinds, seen = {}, {}
local counted = redis.call('HGETALL', P .. 'kindn')
for i = 1, #counted, 2 do
  seen[counted[i]] = true
  kinds[#kinds + 1] = counted[i]
end
local reg = redis.call('ZRANGE', C.procs, 0, -1, 'WITHSCORES')
for i = 1, #reg, 2 do
  local pid = reg[i]
  local pk = P .. 'p:' .. pid
  local k = redis.call('HGET', pk, PROC_KIND)
  if k and not seen[k] then
    seen[k] = true
    kinds[#kinds + 1] = k
  end
  ps[#ps + 1] = {pid, reg[i + 1], redis.call('HGETALL', pk),
    note(redis.call('LRANGE', pk .. ':i', 0, -1)), note(redis.call('SMEMBERS', pk .. ':r'))}
end
table.sort(kinds)
local names_of = {} -- each kind's task names as placement asks them (kn:<kind>)
for _, k in ipairs(kinds) do
  names_of[#names_of + 1] = {k, redis.call('SMEMBERS', P .. 'kn:' .. k)}
end
local qs, idles, qks = {}, {}, {}
for _, q in ipairs(names) do
  qs[#qs + 1] = {q, redis.call('LLEN', P .. 'q:' .. q)}
  qks[#qks + 1] = {q, redis.call('HGETALL', P .. 'qk:' .. q), redis.call('SMEMBERS', P .. 'qn:' .. q),
    redis.call('HEXISTS', P .. 'qr', q)}
  local ranked = {}
  for _, k in ipairs(kinds) do
    local flat = redis.call('ZRANGE', rank_key(P, k, q), 0, -1, 'WITHSCORES')
    if #flat > 0 then
      ranked[#ranked + 1] = {k, flat}
    end
  end
  idles[#idles + 1] = {q, ranked}
end
for i = 1, #run, 2 do
  held[#held + 1] = run[i]
end
-- the lanes of each queue and where each is indexed (lib/lanes)
local lanes = {}
for _, q in ipairs(names) do
  local lk = P .. 'lanes:' .. q
  local rdys, rows = {}, {}
  for p = 0, 9 do
    local members = redis.call('ZRANGE', P .. 'rdy:' .. p .. ':' .. q, 0, -1)
    if #members > 0 then
      rdys[#rdys + 1] = {tostring(p), members}
    end
  end
  for _, L in ipairs(redis.call('ZRANGE', lk, 0, -1)) do
    local _, p, key = lane_parts(L)
    local list = lane_list(P, L, q, p, key)
    local head = redis.call('LINDEX', list, 0)
    local parked = {}
    local lm = head and redis.call('HGET', P .. 't:' .. head, TASK_LIMITS)
    if lm then
      for name in string.gmatch(lm, '[^,]+') do
        if redis.call('ZSCORE', P .. 'lpk:' .. name, L) then
          parked[#parked + 1] = name
        end
      end
    end
    rows[#rows + 1] = {L, redis.call('LLEN', list), redis.call('ZSCORE', P .. 'rdy:' .. p .. ':' .. q, L) and 1 or 0,
      redis.call('ZSCORE', P .. 'blk', L) and 1 or 0, key and redis.call('SISMEMBER', P .. 'kp:' .. key, L) or 0, parked}
  end
  lanes[#lanes + 1] = {q, redis.call('EXISTS', lk), redis.call('ZRANGE', P .. 'lvl:' .. q, 0, -1), rdys, rows,
    redis.call('HGET', P .. 'lq', q) or '0'}
end
-- the delayed tasks of each queue (qd), counted from their records while that stays bounded
local SMALL_DELAYED = 2000
local delayed_n = redis.call('ZCARD', C.delayed)
local by_queue = {}
if delayed_n <= SMALL_DELAYED then
  local tally, order = {}, {}
  for _, id in ipairs(redis.call('ZRANGE', C.delayed, 0, -1)) do
    local q = redis.call('HGET', P .. 't:' .. id, TASK_QUEUE) or DEFAULT_QUEUE
    if not tally[q] then
      tally[q] = 0
      order[#order + 1] = q
    end
    tally[q] = tally[q] + 1
  end
  for _, q in ipairs(order) do
    by_queue[#by_queue + 1] = q
    by_queue[#by_queue + 1] = tally[q]
  end
end
-- the deadline index: each entry a waiting task whose record holds the same deadline
local deadlines = {}
if redis.call('ZCARD', P .. 'exp') <= SMALL_DELAYED then
  local flat = redis.call('ZRANGE', P .. 'exp', 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do
    local s, dx = unpack(redis.call('HMGET', P .. 't:' .. flat[i], TASK_STATE, TASK_EXPIRES_MS))
    deadlines[#deadlines + 1] = {flat[i], flat[i + 1], s or '', dx or ''}
  end
end
-- the unique index: each entry a live task whose record names the same key
local uniques = {}
local unique_n = redis.call('HLEN', P .. 'uq')
if unique_n <= SMALL_DELAYED then
  local flat = redis.call('HGETALL', P .. 'uq')
  for i = 1, #flat, 2 do
    local s, u, us = unpack(redis.call('HMGET', P .. 't:' .. flat[i + 1], TASK_STATE, TASK_UNIQUE, TASK_UNIQUE_STARTED))
    uniques[#uniques + 1] = {flat[i], flat[i + 1], s or '', u or '', us or ''}
  end
end
return {fmt(now), redis.call('HGETALL', C.stats), qs, delayed_n, run,
  redis.call('ZCARD', C.failed), ps, idles, redis.call('SMEMBERS', C.idle), record_rows(P, held, {}),
  redis.call('HGETALL', C.cards), redis.call('HGETALL', P .. 'paused'), lanes,
  redis.call('ZRANGE', P .. 'blk', 0, -1, 'WITHSCORES'), redis.call('HGETALL', P .. 'lr'),
  redis.call('HGETALL', P .. 'lim'), redis.call('SMEMBERS', P .. 'limpat'), redis.call('HGETALL', P .. 'qd'),
  by_queue, deadlines, redis.call('HGETALL', P .. 'kinds'), redis.call('HGETALL', P .. 'kindn'), qks, names_of,
  redis.call('ZCARD', P .. 'waiting'), {unique_n, uniques}}
