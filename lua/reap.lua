--[[ reap: take tasks back from processors whose lease lapsed, and from attempts past their timeout
  A lapsed processor's pending tasks go back to the head of their queues without using an
  attempt; its started tasks used their attempt and go back to the head of their queue, or to
  failed when it was the last one; then the processor is removed. A started task past its
  timeout ends its attempt (a late ack from it is stale) and retries with backoff, or fails;
  its slot stays taken (the processor's stuck count, in its load) until that late ack frees it:
  the call may still run, and a slot whose call runs on is never offered another task.
  Bounded: at most limit processors, then timed-out tasks while fewer than limit ids were taken
  (a processor's inbox is at most its capacity). The reply says whether lapsed processors or
  overdue tasks remain, so callers loop until it took nothing and nothing remains.
  Includes: fields, util, processors, lifecycle, replay, metrics
  KEYS[1..9] the fixed keys (see lib/util): uses all but queues
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] limit (1..10000)  ARGV[4] keep_s
  ARGV[5] request id (a replay of a request that took something answers the same, moving nothing)
  Returns {{task ids taken back}, {processor ids removed}, more ('1' | '0'),
           {per processor removed, in order: how many ids it gave back, how many of them failed},
           {per task past its timeout (the last ids taken back): id, processor, timeout_ms,
            'retry' | 'failed', ms until the retry is due ('' when failed)},
           how many waiting tasks it ended expired (their deadline came: lib/lifecycle)}
    (the last two say what a scheduler loop logs; a reply of the first three alone reads the same)
  Then, while fewer than limit ids were taken, waiting tasks whose deadline came (the deadline
  index exp, oldest first) leave their place and end expired.
  The first reap of a minute copies the metrics' totals into that minute's key (lib/metrics).
  Invariant: every id taken from an inbox lands in exactly one place (queue, delayed, failed).
]]
local C = context(KEYS, ARGV[1])
local P, procs, running = C.prefix, C.procs, C.running
local now = clock_ms(ARGV[2])
C.now, C.keep_s = now, tonumber(ARGV[4])
local limit, rid = tonumber(ARGV[3]), ARGV[5]
if not now or not limit or limit < 1 or limit > 10000 or not C.keep_s or not rid or rid == '' then
  return redis.error_reply('ERR luasched reap: bad now_ms, limit, keep_s or request id')
end
local seen = replayed(C, rid)
if seen then
  return seen
end

local out, removed, counts, overdue = {}, {}, {}, {}
for _, pid in ipairs(redis.call('ZRANGEBYSCORE', procs, '-inf', '(' .. fmt(now), 'LIMIT', 0, limit)) do
  local n, dead = drain(C, pid, 'lease lapsed', out)
  removed[#removed + 1] = pid
  counts[#counts + 1] = fmt(n)
  counts[#counts + 1] = fmt(dead)
  if #out >= limit then
    break
  end
end

if #out < limit then
  local late = redis.call('ZRANGEBYSCORE', running, '-inf', '(' .. fmt(now), 'LIMIT', 0, limit - #out)
  for _, id in ipairs(late) do
    local tk = P .. 't:' .. id
    local pid, o, n, st = unpack(redis.call('HMGET', tk, TASK_PROCESSOR, TASK_TIMEOUT_MS, TASK_ATTEMPTS,
      TASK_STARTED_MS))
    local pk = P .. 'p:' .. pid
    local cap, dto = unpack(redis.call('HMGET', pk, PROC_CAPACITY, PROC_DEFAULT_TIMEOUT_MS))
    o = attempt_timeout(o, dto)
    redis.call('ZREM', running, id)
    redis.call('SREM', pk .. ':r', id)
    if cap then
      -- the slot is still in the call (a thread cannot be stopped; a coroutine may ignore its
      -- cancellation): it stays taken, counted in the load as stuck, until the slot acks
      redis.call('HSET', pk, PROC_REAPED_CALL .. n .. ':' .. id, st or fmt(now))
      redis.call('HINCRBY', pk, PROC_STUCK, 1)
    end
    local err = '{"type":"TaskTimeout","message":"task ' .. id .. ' ran past its timeout of ' .. o .. ' ms on processor ' .. pid .. '"}'
    local status, backoff = attempt_ended(C, id, err, true, nil, 'timeout')
    rerank(C, pid)
    out[#out + 1] = id
    overdue[#overdue + 1] = id
    overdue[#overdue + 1] = pid
    overdue[#overdue + 1] = o
    overdue[#overdue + 1] = status
    overdue[#overdue + 1] = backoff and fmt(backoff) or ''
  end
end

if #out > 0 then
  redis.call('HINCRBY', C.stats, STAT_RECOVERED, #out)
end
keep_minute(C) -- the metrics' history (lib/metrics)
local expired = 0
if #out < limit then -- then waiting tasks whose deadline came: they end expired, never started
  expired = expire_due(C, limit - #out)
end

if #out > 0 then
  wake_scheduler(C)
end
local more = redis.call('ZCOUNT', procs, '-inf', '(' .. fmt(now)) + redis.call('ZCOUNT', running, '-inf', '(' .. fmt(now))
  + redis.call('ZCOUNT', P .. 'exp', '-inf', fmt(now))
return remember(C, rid, {out, removed, more > 0 and '1' or '0', counts, overdue, fmt(expired)},
  #out > 0 or #removed > 0 or expired > 0)
