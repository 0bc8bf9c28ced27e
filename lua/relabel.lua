--[[ relabel: a running processor's labels change, and with them its kind
  The processor leaves its old kind and joins the new one (lib/processors: kindn, qk:<queue>, its
  record's kind, its places in the idle rankings ik:<kind>:<queue>), and a scheduler loop is
  woken: the next placement sees the change. A replay finds the processor of the new kind
  already and changes nothing.
  Includes: fields, util, processors
  KEYS[1..9] the fixed keys (see lib/util): uses procs wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] processor id  ARGV[4] kind
  ARGV[5] the kind's definition (JSON: its task names and labels, luasched/core/kinds)
  Returns {'ok'} | {'lost'}: the processor is not registered or its lease lapsed (it registers
    again, with its new labels)
  Invariant: moves no task.
]]
local C = context(KEYS, ARGV[1])
C.now = clock_ms(ARGV[2])
local pid, kind, def = ARGV[3], ARGV[4], ARGV[5]
if not C.now or pid == '' or not string.match(kind, '^%x+$') or string.sub(def, 1, 1) ~= '{' then
  return redis.error_reply('ERR luasched relabel: bad now_ms, processor id, kind or definition')
end
if not alive(C, pid) then
  return {'lost'}
end
local old, qs = unpack(redis.call('HMGET', C.prefix .. 'p:' .. pid, PROC_KIND, PROC_QUEUES))
if old == kind then
  return {'ok'}
end
kind_leave(C, pid, old, qs)
kind_join(C, pid, kind, def, qs)
for _, q in ipairs(old and split_commas(qs) or {}) do -- its place in the idle rankings moves to its new kind's
  local score = redis.call('ZSCORE', rank_key(C.prefix, old, q), pid)
  if score then
    redis.call('ZREM', rank_key(C.prefix, old, q), pid)
    redis.call('ZADD', rank_key(C.prefix, kind, q), score, pid)
  end
end
wake_scheduler(C)
return {'ok'}
