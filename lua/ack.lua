--[[ ack: running -> done | delayed (retry) | failed, for one or more tasks; then start the next
  The processor that ran tasks reports their outcomes, all in one call. Fenced by (task,
  processor, attempt): an ack for an attempt that is no longer the task's current one, or from a
  processor that no longer holds the task, changes nothing and answers 'stale'. An error retries
  through delayed with exponential backoff (backoff_ms * 2^(attempt-1), at most an hour) until
  max_attempts, then the task is failed (dead letter) keeping the error. Then up to want tasks
  start in the same call: with next = 'inbox' the oldest pending tasks of the processor's inbox;
  with next = 'take' also, while the processor has a free slot, the heads of its queues in turn
  (complete-and-take-next mode). With next = 'place' the slots the ack freed are first filled at once,
  as dispatch would fill them: up to one task per freed slot from the heads of the processor's
  queues, each to the least-loaded live idle processor serving its queue (this one, or another),
  its wake list pushed (dispatch on ack: no scheduler on the hot path); then up to want tasks start
  from the inbox, as with next = 'inbox' (want 0: none; a slot that BLPOPs next lets the token it
  was pushed wake it). With want > 0 and an empty inbox, a task placed on this processor starts
  at once (queued -> running: no inbox, no wake-up token). A lapsed processor starts and places
  nothing.
  A stale ack for an attempt that reap ended past its timeout frees the slot it held (the
  processor's stuck count goes down: see reap), as the ack of a running task does.
  A replay of the same request (same rid) answers as the first call did and changes nothing.
  Includes: fields, util, processors, lanes, lifecycle, placement, replay, metrics
  KEYS[1..9] the fixed keys (see lib/util): uses all but queues
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] processor id  ARGV[4] slot
  ARGV[5] request id  ARGV[6] keep_s  ARGV[7] next 'none' | 'inbox' | 'take' | 'place'
  ARGV[8] want (0..4096)
  ARGV[9] count N (0..4096), then 4 per acked task: task id, attempt, outcome 'done' | 'error',
  result JSON (done) or error JSON (error)
  Returns {{status per acked task}, {'task', id, name, args_json, attempt, timeout_ms, ...},
           {task id, processor id, ...} placed by next = 'place' (empty on a replay: the first call placed),
           more: 1 when next = 'place' placed and the processor's queues still hold tasks, else 0,
           {per acked error that ended an attempt: task id, ms until the retry is due ('' when
            failed), max_attempts} (empty on a replay): what the processor's log line says}
    status: 'done' | 'retry' | 'failed' | 'stale'
  Each attempt acked counts its duration (lib/metrics).
  Invariant: each acked task leaves the inbox into exactly one place; started tasks stay in it.
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
C.now, C.keep_s = clock_ms(ARGV[2]), tonumber(ARGV[6])
local pid, slot, rid = ARGV[3], ARGV[4], ARGV[5]
local nxt, want, count = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local PER_ACK = 4
if not C.now or not C.keep_s or pid == '' or slot == '' or rid == '' or not want or want < 0
    or want > 4096 or not count or count < 0 or count > 4096 or #ARGV ~= 9 + count * PER_ACK then
  return redis.error_reply('ERR luasched ack: bad now_ms, keep_s, processor, slot, request id, want or count')
end
if nxt ~= 'none' and nxt ~= 'inbox' and nxt ~= 'take' and nxt ~= 'place' then
  return redis.error_reply('ERR luasched ack: next must be none|inbox|take|place, not ' .. nxt)
end
for i = 0, count - 1 do
  local base = 9 + i * PER_ACK
  local outcome = ARGV[base + 3]
  if ARGV[base + 1] == '' or not tonumber(ARGV[base + 2]) or (outcome ~= 'done' and outcome ~= 'error') then
    return redis.error_reply('ERR luasched ack: bad task id, attempt or outcome (done|error) in ack ' .. (i + 1))
  end
end
local pk = P .. 'p:' .. pid

local memo = memo_for(redis.call('HGET', pk, PROC_ACK_MEMO .. slot), rid)
if memo then
  return {split_commas(memo[1]), memo_started(C, pid, memo[2], {}), {}, 0, {}}
end

-- every input checked; writes start here
local statuses, ended = {}, {}
local freed, unstuck = 0, 0
local released = false
for i = 0, count - 1 do
  local base = 9 + i * PER_ACK
  local id, attempt, outcome, payload = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  local tk = P .. 't:' .. id
  local s, p, n, w, g, h, c, sc, u, f, st = unpack(redis.call('HMGET', tk, TASK_STATE, TASK_PROCESSOR,
    TASK_ATTEMPTS, TASK_WAITER, TASK_GROUP, TASK_HELD, TASK_CHILDREN, TASK_SCHEDULE, TASK_UNIQUE, TASK_NAME,
    TASK_STARTED_MS))
  local status = 'stale'
  if s == 'running' and p == pid and n == attempt then
    redis.call('ZREM', C.running, id) -- the first write: on a server without script flags it decides OOM
    observe(C, METRIC_DURATION, METRIC_DURATION_SUM, f, C.now - tonumber(st))
    redis.call('SREM', P .. 'p:' .. pid .. ':r', id)
    redis.call('HSET', tk, TASK_LAST_PROCESSOR, pid)
    if outcome == 'done' then
      released = release(C, id, h) or released
      finish(C, id, 'done', TASK_RESULT, payload, {w, g, c, sc, u})
      status = 'done'
    else
      local retry_ms, m
      status, retry_ms, m = attempt_ended(C, id, payload, true, h, 'error')
      released = released or (h and true or false)
      ended[#ended + 1] = id
      ended[#ended + 1] = retry_ms and fmt(retry_ms) or ''
      ended[#ended + 1] = fmt(m)
    end
    freed = freed + 1
  elseif redis.call('HDEL', pk, PROC_REAPED_CALL .. attempt .. ':' .. id) == 1 then
    -- reap ended this attempt past its timeout while the slot was still in the call: the slot
    -- is back, and free again
    unstuck = unstuck + 1
  end
  statuses[#statuses + 1] = status
end
if unstuck > 0 then
  redis.call('HINCRBY', pk, PROC_STUCK, -unstuck)
  freed = freed + unstuck
end

local tasks, took, expired = {}, false, 0
local cap, qs, dl, stuck, dto, kind = unpack(redis.call('HMGET', pk, PROC_CAPACITY, PROC_QUEUES, PROC_DEADLINE_MS,
  PROC_STUCK, PROC_DEFAULT_TIMEOUT_MS, PROC_KIND))
local registered = cap ~= false and cap ~= nil
local live = registered and lease_ok(C, pid, dl, cap)
if live and (nxt == 'inbox' or nxt == 'take') and want > 0 then
  tasks, took, expired = start_many(C, pid, want, nxt == 'take', dto, cap, qs, stuck, kind)
end
local pending
if registered and (freed > 0 or took or expired > 0) then
  pending = rerank(C, pid, cap, qs, stuck, kind)
end
local filled, placements, more = 0, {}, 0
local looked = false -- this call's placement read the processor's queues: whether tasks are left is known
if live and nxt == 'place' then
  if freed > 0 then
    local names = split_commas(qs)
    local turn = 0
    if #names > 1 then -- start at a different queue each time: no queue of the processor starves another
      turn = redis.call('HINCRBY', pk, PROC_TURN, 1)
    end
    if released then -- counts came free: more lanes that wait for them go (a lane let go may not be placeable)
      counts_free(C, 100)
    end
    local pl = placer(C, freed)
    if want > 0 and pending == 0 then -- what lands here starts at once (nothing older waits in the inbox)
      pl.own = {pid = pid, want = want, tasks = tasks, dto = dto}
    end
    local left
    filled, left = place_queued(pl, names, freed, placements, turn)
    placed(pl)
    more = left and 1 or 0
    looked = true
  end
  if want > #tasks then -- then start from the inbox, oldest first
    local more_tasks, _, gone = start_many(C, pid, want - #tasks, false, dto, cap, qs, stuck)
    for _, t in ipairs(more_tasks) do
      tasks[#tasks + 1] = t
    end
    if gone > 0 then -- pending tasks that expired left its inbox
      rerank(C, pid, cap, qs, stuck, kind)
    end
  end
end
if registered and freed > filled and not took then
  -- a slot came free: a scheduler may now place a waiting task
  if looked then
    if more == 1 then -- tasks are left that this call did not place
      wake_scheduler(C)
    end
  else
    local paused = pauses(C)
    for _, q in ipairs(split_commas(qs)) do
      if not is_paused(paused, q) and has_ready(C, q) then
        wake_scheduler(C)
        break
      end
    end
  end
end
if registered then
  redis.call('HSET', pk, PROC_ACK_MEMO .. slot, rid .. '|' .. table.concat(statuses, ',') .. '|' .. started_memo(tasks))
end
observed(C)
return {statuses, started_reply(tasks), placements, more, ended}
