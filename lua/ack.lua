--[[ ack: running -> done | delayed (retry) | failed, then optionally start the next task
  The processor that ran a task reports its outcome. Fenced by (task, processor, attempt): an ack
  for an attempt that is no longer the task's current one, or from a processor that no longer
  holds the task, changes nothing and answers 'stale'. An error retries through delayed with
  exponential backoff (backoff_ms * 2^(attempt-1), at most an hour) until max_attempts, then the
  task is failed (dead letter) keeping the error. With next = '1' the oldest pending task of the
  processor's inbox is started in the same call; with next = '2', if the inbox is empty and the
  processor has a free slot, it also takes the head task of one of its queues, in turn
  (complete-and-take-next mode).
  A replay of the same request (same rid) answers as the first call did and changes nothing.
  KEYS[1..8] the fixed keys (see _lib): uses all
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] processor id  ARGV[4] slot
  ARGV[5] request id  ARGV[6] task id  ARGV[7] attempt  ARGV[8] outcome 'done' | 'error'
  ARGV[9] result JSON (done) or error JSON (error)  ARGV[10] keep_s  ARGV[11] next '0' | '1' | '2'
  Returns {status, ['task', id, name, args_json, attempt, timeout_ms]}
    status: 'done' | 'retry' | 'failed' | 'stale'; the second part only when a next task started.
  Invariant: the acked task leaves the inbox into exactly one place; a started next task stays
  in the inbox.
]]
local stats, delayed, running, failed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local procs, idle, wake = KEYS[6], KEYS[7], KEYS[8]
local P = ARGV[1]
local now = clock_ms(ARGV[2])
local pid, slot, rid, id, attempt = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local outcome, payload, keep_s, nxt = ARGV[8], ARGV[9], tonumber(ARGV[10]), ARGV[11]
if not now or not keep_s or pid == '' or slot == '' or rid == '' or id == '' or not tonumber(attempt) then
  return redis.error_reply('ERR luasched ack: bad now_ms, keep_s, processor, slot, request or task id, or attempt')
end
if (outcome ~= 'done' and outcome ~= 'error') or (nxt ~= '0' and nxt ~= '1' and nxt ~= '2') then
  return redis.error_reply('ERR luasched ack: outcome must be done|error and next 0|1|2')
end
local pk = P .. 'p:' .. pid

local memo = memo_for(redis.call('HGET', pk, 'm' .. slot), rid)
if memo then
  local t = memo_task(P, pid, memo[2], memo[3])
  if t then
    return {memo[1], {'task', unpack(t)}}
  end
  return {memo[1]}
end

local tk = P .. 't:' .. id
local s, p, n = unpack(redis.call('HMGET', tk, 's', 'p', 'n'))
local status = 'stale'
if s == 'running' and p == pid and n == attempt then
  redis.call('ZREM', running, id)
  redis.call('SREM', P .. 'p:' .. pid .. ':r', id)
  redis.call('HSET', tk, 'by', pid)
  if outcome == 'done' then
    finish(P, stats, failed, id, 'done', now, keep_s, 'r', payload)
    status = 'done'
  else
    status = attempt_ended(P, stats, delayed, failed, id, now, keep_s, payload, true)
  end
end

local t = nil
local took_from_queue = false
local registered = redis.call('EXISTS', pk) == 1
if nxt ~= '0' and alive(procs, pid, now) then
  t = start_next(P, stats, running, pid, now)
  if not t and nxt == '2' then
    local cap, qs = unpack(redis.call('HMGET', pk, 'c', 'qs'))
    local load = redis.call('SCARD', P .. 'p:' .. pid .. ':r') -- the pending list is empty here
    -- start at a different queue each time, so that no queue of the processor starves another
    local names = split_commas(qs)
    local turn = redis.call('HINCRBY', pk, 'rr', 1)
    for k = 0, #names - 1 do
      if load >= tonumber(cap) then
        break
      end
      local q = names[(turn + k) % #names + 1]
      local qid = redis.call('LPOP', P .. 'q:' .. q)
      if qid then
        redis.call('RPUSH', P .. 'p:' .. pid .. ':i', qid)
        redis.call('HSET', P .. 't:' .. qid, 's', 'assigned', 'p', pid)
        redis.call('HINCRBY', stats, 'assigned', 1)
        t = start_next(P, stats, running, pid, now)
        took_from_queue = true
        break
      end
    end
  end
end
if registered and (status ~= 'stale' or took_from_queue) then
  rerank(P, stats, idle, pid)
end
if registered and status ~= 'stale' and not took_from_queue then
  -- a slot came free: a scheduler may now place a waiting task
  for _, q in ipairs(split_commas(redis.call('HGET', pk, 'qs'))) do
    if redis.call('LLEN', P .. 'q:' .. q) > 0 then
      wake_scheduler(wake)
      break
    end
  end
end
if registered then
  if t then
    redis.call('HSET', pk, 'm' .. slot, rid .. '|' .. status .. '|' .. t[1] .. '|' .. t[4])
  else
    redis.call('HSET', pk, 'm' .. slot, rid .. '|' .. status .. '||')
  end
end
if t then
  return {status, {'task', unpack(t)}}
end
return {status}
