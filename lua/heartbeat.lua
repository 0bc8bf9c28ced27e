--[[ heartbeat: renew a processor's lease
  A processor that is not registered, or whose lease already lapsed, is lost: its inbox belongs
  to reap now, and renewing would let it run tasks that may be handed out again.
  Includes: fields, util, processors
  KEYS[1..9] the fixed keys (see lib/util): uses procs cards
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] processor id
  Returns {'ok', pending count, lease deadline ms} | {'lost'}
  Invariant: moves no task.
]]
local C = context(KEYS, ARGV[1])
local now = clock_ms(ARGV[2])
C.now = now
local pid = ARGV[3]
if not now or pid == '' then
  return redis.error_reply('ERR luasched heartbeat: bad now_ms or processor id')
end
local pk = C.prefix .. 'p:' .. pid
if not alive(C, pid) then
  return {'lost'}
end
local ls, cap, qs = unpack(redis.call('HMGET', pk, PROC_LEASE_MS, PROC_CAPACITY, PROC_QUEUES))
local deadline = fmt(now + tonumber(ls))
redis.call('ZADD', C.procs, deadline, pid)
redis.call('HSET', pk, PROC_HEARTBEAT_MS, fmt(now), PROC_DEADLINE_MS, deadline)
write_card(C, pid, cap, deadline, qs)
return {'ok', redis.call('LLEN', pk .. ':i'), deadline}
