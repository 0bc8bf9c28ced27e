--[[ register: a processor joins with a capacity, its queues and a lease
  Registering an id that is already registered and alive renews its lease and changes nothing
  else (so a replay is harmless); an id whose lease lapsed is lost and must not come back:
  the processor registers again under a new id.
  Includes: fields, util, processors
  KEYS[1..9] the fixed keys (see lib/util): uses stats queues procs idle wake cards
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] processor id  ARGV[4] capacity (1..4096)
  ARGV[5] lease_ms  ARGV[6] queues, comma-joined  ARGV[7] name
  ARGV[8] default timeout ms of tasks without their own (0..2^53; '' or '0' = none)
  ARGV[9] kind (16 hex digits)  ARGV[10] the kind's definition (JSON: its task names and labels,
  luasched/core/kinds): a new processor is counted in kindn and qk:<queue> (lib/processors), and
  ranked idle for each of its queues under its kind (ik:<kind>:<queue>)
  Returns {'ok', lease deadline ms} | {'lost'}
  Invariant: moves no task; a new processor starts idle with an empty inbox.
]]
local C = context(KEYS, ARGV[1])
local procs = C.procs
local now = clock_ms(ARGV[2])
C.now = now
local pid, cap, lease, qs, name = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7]
local dto = tonumber(ARGV[8] or '') or 0
local kind, def = ARGV[9] or '', ARGV[10] or ''
if not now or pid == '' or not cap or cap < 1 or cap > 4096 or not lease or lease < 1 or qs == '' or dto < 0
    or not string.match(kind, '^%x+$') or string.sub(def, 1, 1) ~= '{' then
  return redis.error_reply('ERR luasched register: bad now_ms, processor id, capacity, lease, queues, '
    .. 'default timeout or kind')
end
local pk = C.prefix .. 'p:' .. pid
local deadline = fmt(now + lease)
if redis.call('ZSCORE', procs, pid) then
  if not alive(C, pid) then
    return {'lost'}
  end
  redis.call('ZADD', procs, deadline, pid)
  redis.call('HSET', pk, PROC_HEARTBEAT_MS, fmt(now), PROC_DEADLINE_MS, deadline)
  local c, q = unpack(redis.call('HMGET', pk, PROC_CAPACITY, PROC_QUEUES))
  write_card(C, pid, c, deadline, q)
  return {'ok', deadline}
end
redis.call('DEL', pk, pk .. ':i', pk .. ':r', pk .. ':w')
redis.call('HSET', pk, PROC_CAPACITY, fmt(cap), PROC_QUEUES, qs, PROC_LEASE_MS, fmt(lease), PROC_NAME, name,
  PROC_REGISTERED_MS, fmt(now), PROC_HEARTBEAT_MS, fmt(now), PROC_DEADLINE_MS, deadline)
redis.call('ZADD', procs, deadline, pid)
if dto > 0 then
  redis.call('HSET', pk, PROC_DEFAULT_TIMEOUT_MS, fmt(dto))
end
write_card(C, pid, fmt(cap), deadline, qs)
kind_join(C, pid, kind, def, qs)
for _, q in ipairs(split_commas(qs)) do
  redis.call('SADD', C.queues, q)
end
rerank(C, pid)
wake_scheduler(C)
return {'ok', deadline}
