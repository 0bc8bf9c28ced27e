--[[ start: assigned -> running, the oldest task in a processor's inbox
  Used by a processor slot that has nothing to run. The attempt number goes up by one here.
  A replay of the same request (same rid, reply lost) answers as the first call did.
  KEYS[1..8] the fixed keys (see _lib): uses stats running procs
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] processor id  ARGV[4] slot
  ARGV[5] request id
  Returns {'task', id, name, args_json, attempt, timeout_ms} | {'empty'} | {'lost'}
    'lost': the processor is not registered or its lease lapsed; it must not run anything.
  Invariant: the task moves from the processor's pending list to its running set, never out of it.
]]
local stats, running, procs = KEYS[1], KEYS[3], KEYS[6]
local P = ARGV[1]
local now = clock_ms(ARGV[2])
local pid, slot, rid = ARGV[3], ARGV[4], ARGV[5]
if not now or pid == '' or slot == '' or rid == '' then
  return redis.error_reply('ERR luasched start: bad now_ms, processor, slot or request id')
end
local pk = P .. 'p:' .. pid

local memo = memo_for(redis.call('HGET', pk, 'm' .. slot), rid)
if memo then
  local t = memo_task(P, pid, memo[1], memo[2])
  if t then
    return {'task', unpack(t)}
  end
  return {'empty'}
end
if not alive(procs, pid, now) then
  return {'lost'}
end

local t = start_next(P, stats, running, pid, now)
if not t then
  redis.call('HSET', pk, 'm' .. slot, rid .. '||')
  return {'empty'}
end
redis.call('HSET', pk, 'm' .. slot, rid .. '|' .. t[1] .. '|' .. t[4])
return {'task', unpack(t)}
