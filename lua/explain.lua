--[[ explain: what holds one task where it is, read in one call (read-only)
  The facts luasched/core/explain.py turns into a reason: the task's record, the entry of the
  place it is in, and for a queued task what a placing call would meet at the head of its lane
  now (pauses, its limiters' running counts and rates), its lane's head and length, its queue's
  depth, and whether a live processor serves its queue.
  Cost: O(1) reads and O(log n) index lookups, plus the limiters the head of its lane names (a
  few) and the limiter patterns; for a queued task also O(live processors, at most ARGV[4]):
  the processors serving a queue are not indexed (the idle rankings rank only the idle ones),
  so their cards are read. Never reads a queue, a lane or an inbox beyond its head.
  Includes: fields, util, lanes, processors, routing
  KEYS[1..9] the fixed keys (see lib/util): uses delayed running procs idle cards
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] task id
  ARGV[4] limit (1..10000): at most this many live processors are read
  Returns {now_ms, {name, value, ...}}: no pairs when there is no task; else state and the
  record's queue, priority, key, limits, attempts, max_attempts, processor, last_processor,
  created_ms, started_ms, finished_ms, error (JSON), expires_ms (its deadline) where set;
  then by state:
    waiting: parents (as stored), deps_left, deps_bad, on_failure, feed
    delayed: until_ms (its due time)
    queued: paused ('namespace', 'queue', 'key' (in every queue) or 'queue_key': the widest pause
      covering it) and paused_ms;
      held ('max' or 'rate', for the head of its lane) with limiter, and running and max
      ('max') or until_ms ('rate'); head (the id at its lane's head), lane_length, queue_depth,
      laned ('1': its queue is in lanes mode); live (live processors), read (those read),
      serving (of those, the ones serving its queue), free (of those, the ones with a free slot);
      task_name (its task name), kinds (the kinds of registered processors serving its queue), named (of those, the ones
      with its task name), capable (of those, the ones whose labels meet its requires), requires
      (as stored) and label (the first of its requires no kind with its task name meets);
      capable_processors (the registered processors of the capable kinds serving its queue) and
      capable_free (of those, the ones ranked idle for its queue: a free slot)
    assigned: lease_ms (its processor's lease deadline; absent: not registered), processor_name,
      pending (its processor's inbox, not started)
    running: lease_ms, processor_name, timeout_ms (the attempt's deadline; 'inf': none)
  Invariant: moves no task, writes nothing (it may run on a replica).
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
local id, limit = ARGV[3], tonumber(ARGV[4])
if not now or id == '' or not limit or limit < 1 or limit > 10000 then
  return redis.error_reply('ERR luasched explain: bad now_ms, task id or limit')
end
C.now = now
local rec = redis.call('HMGET', P .. 't:' .. id, TASK_STATE, TASK_QUEUE, TASK_PRIORITY, TASK_KEY, TASK_LIMITS,
  TASK_ATTEMPTS, TASK_MAX_ATTEMPTS, TASK_PROCESSOR, TASK_LAST_PROCESSOR, TASK_CREATED_MS, TASK_STARTED_MS,
  TASK_FINISHED_MS, TASK_ERROR, TASK_EXPIRES_MS)
local state = rec[1]
if not state then
  return {fmt(now), {}}
end
local out = {'state', state}
local names = {'queue', 'priority', 'key', 'limits', 'attempts', 'max_attempts', 'processor', 'last_processor',
  'created_ms', 'started_ms', 'finished_ms', 'error', 'expires_ms'}
for i, name in ipairs(names) do
  if rec[i + 1] then
    out[#out + 1] = name
    out[#out + 1] = rec[i + 1]
  end
end
local function put(name, value)
  out[#out + 1] = name
  out[#out + 1] = tostring(value)
end
local q, p, key = rec[2] or DEFAULT_QUEUE, rec[3] or '5', rec[4] or nil

-- The processor holding an assigned or running task: its lease and name.
local function holder(pid)
  local deadline = redis.call('ZSCORE', C.procs, pid)
  if deadline then
    put('lease_ms', fmt(tonumber(deadline)))
  end
  put('processor_name', redis.call('HGET', P .. 'p:' .. pid, PROC_NAME) or '')
end

if state == 'waiting' then
  local dp, dn, dz, df, dr = unpack(redis.call('HMGET', P .. 't:' .. id, TASK_PARENTS, TASK_DEPS_LEFT, TASK_DEPS_BAD,
    TASK_ON_FAILURE, TASK_FEED))
  put('parents', dp or '')
  put('deps_left', dn or '0')
  put('deps_bad', dz or '0')
  put('on_failure', df or 'fail')
  put('feed', dr or '0')
elseif state == 'delayed' then
  local due = redis.call('ZSCORE', C.delayed, id)
  if due then
    put('until_ms', fmt(tonumber(due)))
  end
elseif state == 'assigned' and rec[8] then
  holder(rec[8])
  put('pending', redis.call('LLEN', P .. 'p:' .. rec[8] .. ':i'))
elseif state == 'running' and rec[8] then
  holder(rec[8])
  local deadline = redis.call('ZSCORE', C.running, id)
  local d = tonumber(deadline or '')
  if deadline then
    put('timeout_ms', (not d or d == math.huge) and 'inf' or fmt(d))
  end
elseif state == 'queued' then
  -- The widest pause that covers it (the namespace, its queue, its key in every queue or in it).
  local fields = {'*', 'q:' .. q}
  local kinds = {'namespace', 'queue'}
  if key then
    fields[3], fields[4] = 'k:' .. key, 'qk:' .. #q .. ':' .. q .. ':' .. key
    kinds[3], kinds[4] = 'key', 'queue_key'
  end
  local since = redis.call('HMGET', P .. 'paused', unpack(fields))
  for i = 1, #fields do
    if since[i] then
      put('paused', kinds[i])
      put('paused_ms', since[i])
      break
    end
  end
  -- What a placing call meets at the head of its lane: the first limiter that holds it back.
  local L = lane_name(q, p, key)
  local lk = lane_list(P, L, q, p, key)
  local head = redis.call('LINDEX', lk, 0)
  if head then
    put('head', head)
    local lm = head == id and rec[5] or redis.call('HGET', P .. 't:' .. head, TASK_LIMITS)
    if lm then
      local lc = policy(C, nil)
      for name in string.gmatch(lm, '[^,]+') do
        local why, what = held_back(lc, name, now)
        if why == 'max' then
          put('held', 'max')
          put('limiter', name)
          put('running', running_of(lc, name))
          put('max', limiter(lc, name).max)
          break
        elseif why == 'rate' then
          put('held', 'rate')
          put('limiter', name)
          put('until_ms', fmt(math.ceil(what)))
          break
        end
      end
    end
  end
  put('lane_length', redis.call('LLEN', lk))
  put('queue_depth', redis.call('LLEN', P .. 'q:' .. q) + (tonumber(redis.call('HGET', P .. 'lq', q)) or 0))
  put('laned', redis.call('EXISTS', P .. 'lanes:' .. q))
  -- Live processors serving its queue, and those of them with a free slot (the idle set).
  local live = redis.call('ZRANGEBYSCORE', C.procs, fmt(now), '+inf', 'LIMIT', 0, limit)
  local serving, free = 0, 0
  for i = 1, #live, 1000 do
    local chunk = {unpack(live, i, math.min(i + 999, #live))}
    local cards = redis.call('HMGET', C.cards, unpack(chunk))
    for j, pid in ipairs(chunk) do
      local qs
      if cards[j] then
        qs = string.match(cards[j], '^%d+ %d+ (.*)$')
      else -- a processor registered before cards existed
        qs = redis.call('HGET', P .. 'p:' .. pid, PROC_QUEUES)
      end
      for _, served in ipairs(split_commas(qs or '')) do
        if served == q then
          serving = serving + 1
          if redis.call('SISMEMBER', C.idle, pid) == 1 then
            free = free + 1
          end
          break
        end
      end
    end
  end
  put('live', redis.call('ZCOUNT', C.procs, fmt(now), '+inf'))
  put('read', #live)
  put('serving', serving)
  put('free', free)
  -- Which kinds of the processors serving its queue may run it (lib/routing): O(kinds).
  local tname, trq = unpack(redis.call('HMGET', P .. 't:' .. id, TASK_NAME, TASK_REQUIRES))
  local rt = router(P)
  local ks = queue_kinds(rt, q)
  local named, able, able_procs, able_free = 0, 0, 0, 0
  local per_kind = #ks > 0 and redis.call('HMGET', P .. 'qk:' .. q, unpack(ks)) or {} -- processors of each
  for i, k in ipairs(ks) do
    if kind_can(rt, k, tname or '', '') then
      named = named + 1
      if kind_can(rt, k, tname or '', trq or '') then
        able = able + 1
        able_procs = able_procs + (tonumber(per_kind[i]) or 0)
        able_free = able_free + redis.call('ZCARD', rank_key(P, k, q))
      end
    end
  end
  put('task_name', tname or '')
  put('kinds', #ks)
  put('named', named)
  put('capable', able)
  put('capable_processors', able_procs)
  put('capable_free', able_free)
  if trq then
    put('requires', trq)
    if named > 0 and able == 0 then
      for _, cond in ipairs(cjson.decode(trq)) do
        local met = false
        for _, k in ipairs(ks) do
          met = met or kind_can(rt, k, tname or '', cjson.encode({cond}))
        end
        if not met then
          put('label', cond[1])
          break
        end
      end
    end
  end
end
return {fmt(now), out}
