--[[ audit: one consistent snapshot of every place a task can be (read-only, O(tasks))
  An admin tool: it reads every queue, inbox and record in the namespace in one call, so it
  sees no half-finished operation, and it blocks the server while it runs. luasched/core/audit.py
  (check_audit) decides whether the snapshot keeps the invariant.
  Includes: fields, util
  KEYS[1..9] the fixed keys (see lib/util): uses all but wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)
  Returns {now, stats (flat), {{queue, {ids}}...}, {delayed ids}, {running id, deadline...},
           {failed ids}, {{pid, deadline, {record flat}, {pending ids}, {running ids}}...},
           {{queue, {pid, score...}}...}, {idle pids}, {{id, s, q, p, n, m}...},
           {pid, card...} (the cards HASH, flat)}
  Invariant: moves no task, writes nothing.
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
local ids = {}
local function note(list)
  for _, id in ipairs(list) do
    ids[#ids + 1] = id
  end
  return list
end

local names = redis.call('SMEMBERS', C.queues)
table.sort(names)
local qs, idles = {}, {}
for _, q in ipairs(names) do
  qs[#qs + 1] = {q, note(redis.call('LRANGE', P .. 'q:' .. q, 0, -1))}
  idles[#idles + 1] = {q, redis.call('ZRANGE', P .. 'idle:' .. q, 0, -1, 'WITHSCORES')}
end
local del = note(redis.call('ZRANGE', C.delayed, 0, -1))
local run = redis.call('ZRANGE', C.running, 0, -1, 'WITHSCORES')
local fail = note(redis.call('ZRANGE', C.failed, 0, -1))
local ps = {}
local reg = redis.call('ZRANGE', C.procs, 0, -1, 'WITHSCORES')
for i = 1, #reg, 2 do
  local pid = reg[i]
  local pk = P .. 'p:' .. pid
  ps[#ps + 1] = {pid, reg[i + 1], redis.call('HGETALL', pk),
    note(redis.call('LRANGE', pk .. ':i', 0, -1)), note(redis.call('SMEMBERS', pk .. ':r'))}
end
for i = 1, #run, 2 do
  ids[#ids + 1] = run[i]
end
local records = {}
local seen = {}
for _, id in ipairs(ids) do
  if not seen[id] then
    seen[id] = true
    local r = redis.call('HMGET', P .. 't:' .. id, TASK_STATE, TASK_QUEUE, TASK_PROCESSOR, TASK_ATTEMPTS,
      TASK_MAX_ATTEMPTS)
    records[#records + 1] = {id, r[1] or '', r[2] or DEFAULT_QUEUE, r[3] or '', r[4] or '0',
      r[5] or DEFAULT_MAX_ATTEMPTS}
  end
end
return {fmt(now), redis.call('HGETALL', C.stats), qs, del, run, fail, ps, idles,
  redis.call('SMEMBERS', C.idle), records, redis.call('HGETALL', C.cards)}
