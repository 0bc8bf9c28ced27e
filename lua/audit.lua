--[[ audit: the frame of an audit, one consistent snapshot of everything but the big places
  (read-only, O(queues + processors' inboxes + running tasks), never O(queued tasks))
  The first of an audit's bounded calls (luasched/core/flows.py audit): the counters, the sizes
  of the queues, the delayed set and the dead letters, and in full every processor with its inbox,
  the running tasks, the idle rankings and the cards, with the records of the tasks held. The
  members of the big places are read afterwards in slices by audit_slice, each slice with its
  records in one call. luasched/core/audit.py decides whether the invariant holds.
  Includes: util, snapshot
  KEYS[1..9] the fixed keys (see lib/util): uses all but wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)
  Returns {now, stats (flat), {{queue, length}...}, delayed count, {running id, deadline...},
           failed count, {{pid, deadline, {record flat}, {pending ids}, {running ids}}...},
           {{queue, {pid, score...}}...}, {idle pids}, {{id, s, q, p, n, m}...} (of the held
           tasks), {pid, card...} (the cards HASH, flat), {scope, ms...} (the pauses, flat)}
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
local qs, idles = {}, {}
for _, q in ipairs(names) do
  qs[#qs + 1] = {q, redis.call('LLEN', P .. 'q:' .. q)}
  idles[#idles + 1] = {q, redis.call('ZRANGE', P .. 'idle:' .. q, 0, -1, 'WITHSCORES')}
end
local run = redis.call('ZRANGE', C.running, 0, -1, 'WITHSCORES')
local ps = {}
local reg = redis.call('ZRANGE', C.procs, 0, -1, 'WITHSCORES')
for i = 1, #reg, 2 do
  local pid = reg[i]
  local pk = P .. 'p:' .. pid
  ps[#ps + 1] = {pid, reg[i + 1], redis.call('HGETALL', pk),
    note(redis.call('LRANGE', pk .. ':i', 0, -1)), note(redis.call('SMEMBERS', pk .. ':r'))}
end
for i = 1, #run, 2 do
  held[#held + 1] = run[i]
end
return {fmt(now), redis.call('HGETALL', C.stats), qs, redis.call('ZCARD', C.delayed), run,
  redis.call('ZCARD', C.failed), ps, idles, redis.call('SMEMBERS', C.idle), record_rows(P, held, {}),
  redis.call('HGETALL', C.cards), redis.call('HGETALL', P .. 'paused')}
