--[[ counts: how many tasks are in each place, and how many processors there are (read-only)
  Cost: O(number of queues + number of lapsed processors); a queue's depth counts its lanes (lq). A lapsed processor is never counted
  idle, even before a dispatch drops it from the idle rankings.
  Includes: fields, util
  KEYS[1..9] the fixed keys (see lib/util): uses all but wake and cards
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)
  Returns {name, value, ...} for submitted waiting queued delayed assigned running done failed
  cancelled expired (of the failed: not started by their deadline) deduplicated (submits that found
  their unique key held: nothing created) purged (dead letters deleted: gone from every place)
  processors idle_processors lapsed_processors last_dispatch_ms now_ms done_last_minute
  failed_last_minute, then {queue name, depth, ...}
  (the last-minute figures sum the six 10 s buckets before the current one and that one)
  Invariant: moves no task, writes nothing (it may run on a replica).
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local procs, idle = C.procs, C.idle
local now = clock_ms(ARGV[2])
local depths = {}
local queued = 0
local names, depth_of = queue_depths(C)
for _, q in ipairs(names) do
  queued = queued + depth_of[q]
  depths[#depths + 1] = q
  depths[#depths + 1] = depth_of[q]
end
local c = redis.call('HMGET', C.stats, STAT_SUBMITTED, STAT_ASSIGNED, STAT_DONE, STAT_CANCELLED, STAT_LAST_DISPATCH_MS,
  STAT_EXPIRED, STAT_DEDUPLICATED, STAT_PURGED)
local procs_n = redis.call('ZCARD', procs)
local lapsed_ids = redis.call('ZRANGEBYSCORE', procs, '-inf', '(' .. fmt(now))
local lapsed = #lapsed_ids
local idle_n = redis.call('SCARD', idle)
for _, pid in ipairs(lapsed_ids) do
  idle_n = idle_n - redis.call('SISMEMBER', idle, pid)
end
local recent = {done = 0, failed = 0}
local current = math.floor(now / 10000)
for b = current - 6, current do
  local d, f = unpack(redis.call('HMGET', P .. 'rate:' .. fmt(b), RATE_DONE, RATE_FAILED))
  recent.done = recent.done + (tonumber(d) or 0)
  recent.failed = recent.failed + (tonumber(f) or 0)
end
local out = {
  'submitted', tonumber(c[1]) or 0,
  'waiting', redis.call('ZCARD', P .. 'waiting'),
  'queued', queued,
  'delayed', redis.call('ZCARD', C.delayed),
  'assigned', tonumber(c[2]) or 0,
  'running', redis.call('ZCARD', C.running),
  'done', tonumber(c[3]) or 0,
  'failed', redis.call('ZCARD', C.failed),
  'cancelled', tonumber(c[4]) or 0,
  'expired', tonumber(c[6]) or 0,
  'deduplicated', tonumber(c[7]) or 0,
  'purged', tonumber(c[8]) or 0,
  'processors', procs_n,
  'idle_processors', idle_n,
  'lapsed_processors', lapsed,
  'last_dispatch_ms', tonumber(c[5]) or 0,
  'now_ms', now,
  'done_last_minute', recent.done,
  'failed_last_minute', recent.failed,
}
return {out, depths}
