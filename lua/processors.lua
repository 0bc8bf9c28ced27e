--[[ processors: the registered processors and their state (read-only)
  Cost: O(limit + the tasks those processors run): each running task's start time is read, so
  that a task that never returns shows how long it has run.
  Includes: fields, util
  KEYS[1..9] the fixed keys (see lib/util): uses procs
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] limit (1..10000)
  Returns {now ms, {pid, lease deadline ms, name, capacity, queues, pending, running,
           last heartbeat ms, registered ms, stuck, oldest start ms, default timeout ms,
           its kind's definition (JSON: task names and labels; '' when none)}...}
    in lease order, soonest deadline first. stuck: slots still in the call of an attempt that
    reap ended past its timeout; oldest start: when the longest-running of its running tasks
    and stuck calls started ('' when none); default timeout: '0' when none.
  Invariant: moves no task, writes nothing (it may run on a replica).
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
local limit = tonumber(ARGV[3])
if not now or not limit or limit < 1 or limit > 10000 then
  return redis.error_reply('ERR luasched processors: bad now_ms or limit')
end
local calls = #PROC_REAPED_CALL
local out = {}
local reg = redis.call('ZRANGE', C.procs, 0, limit - 1, 'WITHSCORES')
for i = 1, #reg, 2 do
  local pid = reg[i]
  local pk = P .. 'p:' .. pid
  local n, c, qs, hb, rt, sk, dto, k = unpack(redis.call('HMGET', pk, PROC_NAME, PROC_CAPACITY, PROC_QUEUES,
    PROC_HEARTBEAT_MS, PROC_REGISTERED_MS, PROC_STUCK, PROC_DEFAULT_TIMEOUT_MS, PROC_KIND))
  local oldest
  local ids = redis.call('SMEMBERS', pk .. ':r')
  for _, id in ipairs(ids) do
    local st = tonumber(redis.call('HGET', P .. 't:' .. id, TASK_STARTED_MS))
    if st and (not oldest or st < oldest) then
      oldest = st
    end
  end
  if (tonumber(sk) or 0) > 0 then
    local rec = redis.call('HGETALL', pk)
    for j = 1, #rec, 2 do
      if string.sub(rec[j], 1, calls) == PROC_REAPED_CALL then
        local st = tonumber(rec[j + 1])
        if st and (not oldest or st < oldest) then
          oldest = st
        end
      end
    end
  end
  out[#out + 1] = {pid, reg[i + 1], n or '', c or '0', qs or '', redis.call('LLEN', pk .. ':i'), #ids,
    hb or '0', rt or '0', sk or '0', oldest and fmt(oldest) or '', dto or '0',
    k and redis.call('HGET', P .. 'kinds', k) or ''}
end
return {fmt(now), out}
