--[[ processors: the registered processors and their state (read-only)
  Cost: O(limit).
  Includes: fields, util
  KEYS[1..9] the fixed keys (see lib/util): uses procs
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] limit (1..10000)
  Returns {now ms, {pid, lease deadline ms, name, capacity, queues, pending, running,
           last heartbeat ms, registered ms}...} in lease order, soonest deadline first
  Invariant: moves no task, writes nothing (it may run on a replica).
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
local limit = tonumber(ARGV[3])
if not now or not limit or limit < 1 or limit > 10000 then
  return redis.error_reply('ERR luasched processors: bad now_ms or limit')
end
local out = {}
local reg = redis.call('ZRANGE', C.procs, 0, limit - 1, 'WITHSCORES')
for i = 1, #reg, 2 do
  local pid = reg[i]
  local pk = P .. 'p:' .. pid
  local n, c, qs, hb, rt = unpack(redis.call('HMGET', pk, PROC_NAME, PROC_CAPACITY, PROC_QUEUES, PROC_HEARTBEAT_MS,
    PROC_REGISTERED_MS))
  out[#out + 1] = {pid, reg[i + 1], n or '', c or '0', qs or '', redis.call('LLEN', pk .. ':i'),
    redis.call('SCARD', pk .. ':r'), hb or '0', rt or '0'}
end
return {fmt(now), out}
