--[[ dispatch: delayed -> queued for due tasks, then queued -> assigned for up to limit tasks
  Each task goes to the least-loaded live idle processor serving its queue (ties: idle longest),
  chosen before the task leaves the queue: with no idle processor nothing moves. Queues are
  served in turn, one task each per round, so one busy queue cannot starve the others.
  Includes: fields, util, lanes, lifecycle, placement, replay
  KEYS[1..9] the fixed keys (see lib/util): uses stats delayed running queues procs idle cards
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] limit (1..10000)  ARGV[4] request id
  ARGV[5] keep_s (a task met past its deadline ends expired: lib/lifecycle)
  Lanes held back by a limiter's rate whose time has come are ready again first, and lanes waiting
  for a limiter that has free running counts (lib/lanes counts_free).
  A replay of a request that assigned tasks answers as the first call did and moves nothing.
  Returns {{task id, processor id, ...}, now ms, next due ms (a delayed task, or a lane held back
           by a rate), next lease deadline ms,
           next task deadline ms (a running task's timeout, or a waiting task's deadline), promoted}  (the three times '' when there is none: a scheduler
           loop sleeps until the earliest of them, or until woken; promoted: how many delayed
           tasks fell due and were queued, for the loop's summary line)
  Invariant: a task leaves its queue only into an inbox, in the same call.
  Cost per task does not grow with the queue length or the number of processors.
]]
local C = context(KEYS, ARGV[1])
local now = clock_ms(ARGV[2])
C.now = now
local limit, rid = tonumber(ARGV[3]), ARGV[4]
C.keep_s = tonumber(ARGV[5] or '')
if not now or not limit or limit < 1 or limit > 10000 or not rid or rid == '' or not C.keep_s then
  return redis.error_reply('ERR luasched dispatch: bad now_ms, limit, request id or keep_s')
end
local seen = replayed(C, rid)
if seen then
  return seen
end

local promoted = promote(C, limit)
lanes_due(C, fmt(now), limit)
counts_free(C, 100)

local out = {}
local pl = placer(C, limit)
place_queued(pl, redis.call('SMEMBERS', C.queues), limit, out, 0)
placed(pl, 0, {STAT_LAST_DISPATCH_MS, fmt(now)})

local next_due = redis.call('ZRANGE', C.delayed, 0, 0, 'WITHSCORES')[2] or ''
local next_lane = redis.call('ZRANGE', C.prefix .. 'blk', 0, 0, 'WITHSCORES')[2]
if next_lane and (next_due == '' or tonumber(next_lane) < tonumber(next_due)) then
  next_due = next_lane -- a lane a limiter's rate holds back becomes eligible then
end
local next_lease = redis.call('ZRANGE', C.procs, 0, 0, 'WITHSCORES')[2] or ''
local next_deadline = redis.call('ZRANGEBYSCORE', C.running, '-inf', '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2] or ''
if next_deadline == 'inf' then
  next_deadline = ''
end
local next_expiry = redis.call('ZRANGE', C.prefix .. 'exp', 0, 0, 'WITHSCORES')[2]
if next_expiry and (next_deadline == '' or tonumber(next_expiry) < tonumber(next_deadline)) then
  next_deadline = next_expiry -- a waiting task's deadline: the reap then ends it
end
return remember(C, rid, {out, fmt(now), next_due, next_lease, next_deadline, fmt(promoted)}, #out > 0)
