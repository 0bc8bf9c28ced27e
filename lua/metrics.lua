--[[ metrics: one snapshot of what the Prometheus metrics show (read-only)
  Counters of the stats, the places' sizes, the processors and their slots, each queue's depth and
  the oldest ready time of its head tasks, the last minute's finished tasks, and the histograms kept
  since the namespace began (lib/metrics).
  Cost: O(queues + lanes of queues in lanes mode + processors + fields of mt, that is task names
  and queues times buckets); never O(tasks): a queue's oldest task is one of its lanes' heads.
  Includes: fields, util, lanes
  KEYS[1..9] the fixed keys (see lib/util): uses all but wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)
  Returns {{name, value, ...} for revived (failed tasks queued again) purged (dead letters deleted)
           submitted done failed cancelled
           expired retried recovered placed waiting queued delayed assigned running processors
           idle_processors lapsed_processors capacity (of live processors) done_last_minute
           failed_last_minute now_ms},
           {queue name, depth, oldest ready ms ('' when empty), ...},
           {mt field, value, ...}}
  Invariant: moves no task, writes nothing (it may run on a replica).
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
if not now then
  return redis.error_reply('ERR luasched metrics: bad now_ms')
end
local names, depth_of = queue_depths(C)
local queues = {}
local queued = 0
for _, q in ipairs(names) do
  local d = depth_of[q]
  queued = queued + d
  local lists = {P .. 'q:' .. q}
  if redis.call('EXISTS', P .. 'lanes:' .. q) == 1 then -- lanes mode: each lane's head (its oldest)
    lists = {}
    for _, L in ipairs(redis.call('ZRANGE', P .. 'lanes:' .. q, 0, -1)) do
      local lq, lp, lk = lane_parts(L)
      lists[#lists + 1] = lane_list(P, L, lq, lp, lk)
    end
  end
  local oldest = nil
  for _, list in ipairs(lists) do
    local id = redis.call('LINDEX', list, 0)
    if id then
      local rd, ct = unpack(redis.call('HMGET', P .. 't:' .. id, TASK_READY_MS, TASK_CREATED_MS))
      local t = tonumber(rd or ct)
      if t and (not oldest or t < oldest) then
        oldest = t
      end
    end
  end
  queues[#queues + 1] = q
  queues[#queues + 1] = d
  queues[#queues + 1] = oldest and fmt(oldest) or ''
end
local s = redis.call('HMGET', C.stats, STAT_SUBMITTED, STAT_DONE, STAT_FAILED, STAT_CANCELLED, STAT_EXPIRED,
  STAT_RETRIED, STAT_RECOVERED, STAT_PLACED, STAT_ASSIGNED, STAT_REVIVED, STAT_PURGED)
local lapsed_ids = redis.call('ZRANGEBYSCORE', C.procs, '-inf', '(' .. fmt(now))
local idle_n = redis.call('SCARD', C.idle)
for _, pid in ipairs(lapsed_ids) do
  idle_n = idle_n - redis.call('SISMEMBER', C.idle, pid)
end
local capacity = 0
local cards = redis.call('HGETALL', C.cards) -- "capacity lease-deadline-ms queues" per processor
for i = 2, #cards, 2 do
  local cap, dl = string.match(cards[i], '^(%d+) (%d+)')
  if cap and tonumber(dl) >= now then
    capacity = capacity + tonumber(cap)
  end
end
local done, failed = 0, 0
local current = math.floor(now / 10000)
for b = current - 6, current do -- the six 10 s buckets before the current one, and that one
  local d, f = unpack(redis.call('HMGET', P .. 'rate:' .. fmt(b), RATE_DONE, RATE_FAILED))
  done = done + (tonumber(d) or 0)
  failed = failed + (tonumber(f) or 0)
end
local out = {'revived', tonumber(s[10]) or 0, 'purged', tonumber(s[11]) or 0}
local stat_names = {'submitted', 'done', 'failed', 'cancelled', 'expired', 'retried', 'recovered', 'placed'}
for i, name in ipairs(stat_names) do
  out[#out + 1] = name
  out[#out + 1] = tonumber(s[i]) or 0
end
local rest = {
  'waiting', redis.call('ZCARD', P .. 'waiting'),
  'queued', queued,
  'delayed', redis.call('ZCARD', C.delayed),
  'assigned', tonumber(s[9]) or 0,
  'running', redis.call('ZCARD', C.running),
  'processors', redis.call('ZCARD', C.procs),
  'idle_processors', idle_n,
  'lapsed_processors', #lapsed_ids,
  'capacity', capacity,
  'done_last_minute', done,
  'failed_last_minute', failed,
  'now_ms', now,
}
for _, v in ipairs(rest) do
  out[#out + 1] = v
end
return {out, queues, redis.call('HGETALL', P .. 'mt')}
