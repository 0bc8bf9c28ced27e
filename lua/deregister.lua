--[[ deregister: a processor leaves; its inbox goes back
  Pending tasks go back to the head of their queues, in order, without using an attempt. A task
  still running used its attempt and goes back to the head of its queue (or to failed when that
  was its last attempt): stop the slots before deregistering. An unknown id changes nothing.
  Includes: util, lifecycle, replay
  KEYS[1..9] the fixed keys (see lib/util): uses all but queues
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] processor id  ARGV[4] keep_s
  ARGV[5] request id (a replay answers as the first call did)
  Returns {'ok', {task ids given back}} | {'unknown'}
  Invariant: every id in the inbox lands in exactly one place (queue or failed).
]]
local C = context(KEYS, ARGV[1])
C.now, C.keep_s = clock_ms(ARGV[2]), tonumber(ARGV[4])
local pid, rid = ARGV[3], ARGV[5]
if not C.now or pid == '' or not C.keep_s or not rid or rid == '' then
  return redis.error_reply('ERR luasched deregister: bad now_ms, processor id, keep_s or request id')
end
local seen = replayed(C, rid)
if seen then
  return seen
end
if not redis.call('ZSCORE', C.procs, pid) then
  return {'unknown'}
end
local out = {}
drain(C, pid, 'deregistered', out)
if #out > 0 then
  wake_scheduler(C)
end
return remember(C, rid, {'ok', out}, true)
