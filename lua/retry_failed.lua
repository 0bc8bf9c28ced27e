--[[ retry_failed: failed (dead letter) -> queued, with a fresh set of attempts
  Puts dead-lettered tasks back at the tail of their queue with their attempt count reset; the
  last error stays in the record until the task finishes again, and its last attempt joins its
  attempt log (as having ended failed: lib/lifecycle). Ids that are not dead letters
  (any more) are skipped, so a replay changes nothing; so are tasks that ended DependencyFailed (they
  never ran, and what they waited for has ended: make them again with then or _after).
  Includes: fields, util, lanes, lifecycle, replay
  KEYS[1..9] the fixed keys (see lib/util): uses stats failed wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] limit (1..10000)  ARGV[4] request id
  ARGV[5...] task ids to retry; none: the oldest dead letters, up to limit
  A replay of a request that put tasks back answers as the first call did.
  Returns {task ids put back}
  Invariant: each id leaves the dead letters for exactly one queue.
]]
local C = context(KEYS, ARGV[1])
local P, stats, failed = C.prefix, C.stats, C.failed
local now = clock_ms(ARGV[2])
C.now = now
local limit, rid = tonumber(ARGV[3]), ARGV[4]
if not now or not limit or limit < 1 or limit > 10000 or #ARGV - 4 > limit or not rid or rid == '' then
  return redis.error_reply('ERR luasched retry_failed: bad now_ms, limit or request id, or more ids than limit')
end
local seen = replayed(C, rid)
if seen then
  return seen
end
local ids = {}
if #ARGV > 4 then
  for i = 5, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
else
  ids = redis.call('ZRANGE', failed, 0, limit - 1)
end
local out = {}
for _, id in ipairs(ids) do
  local tk = P .. 't:' .. id
  local e = redis.call('ZSCORE', failed, id) and (redis.call('HGET', tk, TASK_ERROR) or '')
  -- a task that never ran because what it waited for failed: it has nothing to run with
  if e and not string.find(e, '"type":"DependencyFailed"', 1, true) then
    local g, n, pt, st, ft, by, log = unpack(redis.call('HMGET', tk, TASK_GROUP, TASK_ATTEMPTS, TASK_PLACED_MS,
      TASK_STARTED_MS, TASK_FINISHED_MS, TASK_LAST_PROCESSOR, TASK_ATTEMPTS_LOG))
    if n then -- its last attempt ended it failed (else it expired, never started)
      redis.call('HSET', tk, TASK_ATTEMPTS_LOG, logged_attempt(log, n, pt, st, tonumber(ft) or now, by, 'failed',
        now, e))
    end
    redis.call('ZREM', failed, id)
    redis.call('HINCRBY', stats, STAT_FAILED, -1)
    redis.call('HINCRBY', stats, STAT_REVIVED, 1) -- failed minus revived: how many ever failed
    redis.call('HSET', tk, TASK_STATE, 'queued', TASK_READY_MS, fmt(now))
    redis.call('HDEL', tk, TASK_FINISHED_MS, TASK_ATTEMPTS, TASK_PLACED_MS)
    local q, p, key, lm = lane_of(C, id)
    enqueue(C, id, q, p, key, lm, false)
    if g and redis.call('EXISTS', P .. 'g:' .. g) == 1 then
      redis.call('HINCRBY', P .. 'g:' .. g, GROUP_FAILED, -1)
      redis.call('PERSIST', P .. 'g:' .. g)
      redis.call('PERSIST', P .. 'gs:' .. g)
      redis.call('PERSIST', P .. 'gi:' .. g)
    end
    out[#out + 1] = id
  end
end
if #out > 0 then
  wake_scheduler(C)
end
return remember(C, rid, out, #out > 0)
