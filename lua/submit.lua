--[[ submit: new tasks -> queued | delayed (and, when asked, queued -> assigned in the same call)
  With dispatch, a new plain task (priority 5, no key, no limits) of a plain queue that holds no
  task goes straight to the chosen processor: its record is written assigned, and it never
  passes through its queue (three writes and the queue's reads fewer on the fast path).
  Creates one task record per new id and places it. An id that already exists is left alone and
  reported, so a replayed submit (reply lost, call sent again) creates nothing twice.
  Unique keys (luasched/core/unique.py; lib/unique): a task given one creates nothing while a
  live task holds that key (uq HASH: key -> its id): its submit collapses into that task and is
  counted as deduplicated, not submitted. With debounce_ms > 0, a holder of the same task
  name that never started takes the collapsed submit's arguments (and its expires_ms, when it has
  one), and when delayed its due time becomes now + debounce_ms; queued or assigned, it keeps its
  place (it is due). A holder that started (running, or waiting for a retry) is left alone. Within
  one call the tasks go in order, as one submit after another: the first of a key creates (or
  finds) the holder, the later ones collapse into it, a debounced one updating it.
  Includes: fields, util, lanes, routing, lifecycle, placement, unique, records
  KEYS[1..9] the fixed keys (see lib/util): uses stats delayed queues procs idle wake cards
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] dispatch ('1' = assign at once)
  ARGV[4] group id ('' = none)  ARGV[5] count N  ARGV[6] keep_s
  then 12 per task: id name queue args_json max_attempts timeout_ms backoff_ms delay_ms policy
  expires_ms (0 = none: else the task's deadline is now + expires_ms, kept in its record and in
  the deadline index exp until it starts; a placing call ends it expired once that has passed)
  deps ('' = none; else "<on_failure: fail|run|skip>\n<feed: 0|1>\n<refs>": the task waits, in
  the waiting set, for what refs name, comma-joined: t:<id> (a task) or g:<gid> (a group), which
  must exist; feed '1' (one ref only): their results come in as its first argument; delay_ms 0)
  trace ('' = none; else the submit's trace context, JSON, kept in the record: luasched/tracing.py)
  then 4 per task that has a unique key, in task order: its index (1..N) key until ('finished' |
  'started': which of the record's two unique fields names the key) debounce_ms
  (0 = none)
  (policy: '' for priority 5, no key, no limits and no requires; else "<priority 0..9>\n<limiter
  names, comma-joined>\n<requires (JSON, luasched/core/kinds; '' = none)>\n<key ('' = none)>":
  luasched/core/options.py policy_field)
  A task naming a limiter that is neither a limiter nor matched by a pattern is refused, and the
  whole call writes nothing. So is a call that would bring a queue with a max_pending (qmax)
  above it: its waiting tasks (queued, in its lanes, delayed: qd) plus the new ones. The error
  says "queue '<q>' is full: <depth> waiting, max_pending <n>, <k> more refused".
  Returns {created, {existing ids}, {task id, processor id, ...assignments},
           {task id, holder id, 'unique' | 'debounced', ...: the submits that collapsed; only when
            the call has unique keys}}
  Invariant: every new id is in exactly one place (queue tail or delayed, or an inbox if dispatched).
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
C.now = now
local dispatch = ARGV[3] == '1'
local group = ARGV[4]
local count = tonumber(ARGV[5])
C.keep_s = tonumber(ARGV[6])
local PER_TASK = 12

if not now or not C.keep_s then
  return redis.error_reply('ERR luasched submit: now_ms or keep_s is not a number')
end
local extra = count and #ARGV - 6 - count * PER_TASK
if not count or count < 1 or extra < 0 or extra % 4 ~= 0 then
  return redis.error_reply('ERR luasched submit: ARGV does not hold ' .. tostring(ARGV[5]) .. ' tasks')
end
-- what unique keys need, made only for a call that has some (a plain submit allocates none of it)
local uniq, holders, merged, newer, updates, upd_order
if extra > 0 then
  -- uniq: task index (from 0) -> {key, the record field naming it, debounce ms}; holders: unique
  -- key -> what holds it, {id, state, started, name, base (a new task)}; merged: task id, holder
  -- id, how, of the submits that collapsed; newer: base of a new task -> base of the later
  -- debounced submit it takes its arguments from; updates: an existing holder's id -> base of
  -- the debounced submit it takes (upd_order: those holders in order)
  uniq, holders, merged, newer, updates, upd_order = {}, {}, {}, {}, {}, {}
end
for j = 0, extra / 4 - 1 do
  local b = 6 + count * PER_TASK + j * 4
  local i, key, till, deb = tonumber(ARGV[b + 1]), ARGV[b + 2], ARGV[b + 3], tonumber(ARGV[b + 4])
  if not i or i < 1 or i > count or uniq[i - 1] or key == '' or (till ~= 'finished' and till ~= 'started')
      or not deb or deb < 0 then
    return redis.error_reply('ERR luasched submit: unique entry ' .. (j + 1) ..
      ' is not "<task index> <key> finished|started <debounce_ms>"')
  end
  uniq[i - 1] = {key, till == 'started' and TASK_UNIQUE_STARTED or TASK_UNIQUE, deb}
end

local seen, fresh, existing = {}, {}, {}
local adding, added = {}, {} -- queue -> how many new tasks this call brings; the queues, in order
local lc = nil
local parsed = {} -- base -> {priority, limits, key} of a task with a policy, read once
local deps = {} -- base -> {on_failure, feed, refs, {ref...}} of a task that waits for others
for i = 0, count - 1 do
  local base = 6 + i * PER_TASK
  local id, name, queue = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  if id == '' or name == '' or queue == '' or string.find(queue, ',', 1, true) then
    return redis.error_reply('ERR luasched submit: empty id, name or queue, or a comma in a queue name')
  end
  for k = 5, 10 do
    if k ~= 9 and not tonumber(ARGV[base + k]) then
      return redis.error_reply('ERR luasched submit: field ' .. k .. ' of task ' .. id .. ' is not a number')
    end
  end
  local dep = ARGV[base + 11]
  if dep ~= '' then
    local df, dr, refs = string.match(dep, '^(%a+)\n([01])\n(.+)$')
    if not (df == 'fail' or df == 'run' or df == 'skip') or tonumber(ARGV[base + 8]) > 0 then
      return redis.error_reply('ERR luasched submit: the deps of task ' .. id ..
        ' are not "<fail|run|skip>\\n<0|1>\\n<refs>", or it has a delay')
    end
    local list = split_commas(refs)
    if dr == '1' and #list ~= 1 then
      return redis.error_reply('ERR luasched submit: task ' .. id .. ' is fed by ' .. #list .. ' refs, not one')
    end
    for _, ref in ipairs(list) do
      local kind = string.sub(ref, 1, 2)
      if (kind ~= 't:' and kind ~= 'g:') or redis.call('EXISTS', P .. ref) == 0 then
        return redis.error_reply("ERR luasched submit: task " .. id .. " waits for '" .. ref ..
          "', which does not exist" .. (kind == 'g:' and ' (a group exists once it has a member)' or ''))
      end
    end
    deps[base] = {df, dr, refs, list}
  end
  local pol = ARGV[base + 9]
  local lm = ''
  if pol ~= '' then
    local pr, rq, key
    pr, lm, rq, key = policy_parts(pol)
    if not pr then
      return redis.error_reply('ERR luasched submit: the policy of task ' .. id ..
        ' is not "<0..9>\\n<limits>\\n<requires>\\n<key>"')
    end
    parsed[base] = {pr, lm, key, rq}
  end
  if lm ~= '' then
    lc = lc or policy(C, nil)
    for name in string.gmatch(lm, '[^,]+') do
      if not limiter(lc, name) then
        return redis.error_reply("ERR luasched submit: no limiter named '" .. name .. "' (task " .. id ..
          '): create it with limit() first')
      end
    end
  end
  if seen[id] then
    return redis.error_reply('ERR luasched submit: id ' .. id .. ' appears twice')
  end
  seen[id] = true
  local known = redis.call('EXISTS', P .. 't:' .. id) == 1
  local u = extra > 0 and uniq[i]
  local holder = nil
  if u and not known then
    holder = holders[u[1]] or unique_holder(C, u[1])
    holders[u[1]] = holder
  end
  if holder then
    local debounced = u[3] > 0 and not holder[3] and holder[4] == name
    merged[#merged + 1], merged[#merged + 2], merged[#merged + 3] = id, holder[1],
      debounced and 'debounced' or 'unique'
    if debounced and holder[5] then
      newer[holder[5]] = base
    elseif debounced then
      if not updates[holder[1]] then
        upd_order[#upd_order + 1] = holder[1]
      end
      updates[holder[1]] = base
    end
  elseif known then
    existing[#existing + 1] = id
  else
    if u then
      holders[u[1]] = {id, tonumber(ARGV[base + 8]) > 0 and 'delayed' or 'queued', false, name, base}
    end
    fresh[#fresh + 1] = base
    if deps[base] then -- a task that waits is in no queue yet: the queue's cap does not count it
    elseif not adding[queue] then
      added[#added + 1] = queue
      adding[queue] = 1
    else
      adding[queue] = adding[queue] + 1
    end
  end
end
if #added > 0 then -- the queues' caps: one HMGET of a usually missing key
  local caps = redis.call('HMGET', P .. 'qmax', unpack(added))
  for i, q in ipairs(added) do
    local cap = tonumber(caps[i])
    if cap then
      local depth = pending_depth(P, q)
      if depth + adding[q] > cap then
        return redis.error_reply("ERR luasched submit: queue '" .. q .. "' is full: " .. depth ..
          ' waiting, max_pending ' .. cap .. ', ' .. adding[q] .. ' more refused')
      end
    end
  end
end

-- every input checked; writes start here
local touched, listed, laned, later, named = {}, {}, {}, {}, {}
local order, assigned = {}, {}
local pl = dispatch and placer(C, #fresh) or nil
for _, base in ipairs(fresh) do
  local id, name, queue = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local latest = extra > 0 and newer[base] or base -- a debounced duplicate later in this call: its arguments
  local args = ARGV[latest + 4]
  local tk = P .. 't:' .. id
  local delay = tonumber(ARGV[base + 8])
  if latest ~= base and delay > 0 then -- delayed: its start moves to the latest debounce
    delay = uniq[(latest - 6) / PER_TASK][3]
  end
  local fields = {TASK_NAME, name, TASK_ARGS, args, TASK_CREATED_MS, fmt(now), TASK_STATE,
                  delay > 0 and 'delayed' or 'queued'}
  if group ~= '' then
    fields[#fields + 1], fields[#fields + 2] = TASK_GROUP, group
  end
  local pr, lm, key, rq = '5', '', '', ''
  if parsed[base] then
    pr, lm, key, rq = unpack(parsed[base])
  end
  optional_fields(fields, queue, ARGV[base + 5], ARGV[base + 7], ARGV[base + 6], pr, key, lm, rq)
  if ARGV[base + 12] ~= '' then
    fields[#fields + 1], fields[#fields + 2] = TASK_TRACE, ARGV[base + 12]
  end
  local expires = tonumber(ARGV[base + 10])
  if extra > 0 then -- its unique key, and a later debounced duplicate's deadline
    local u = uniq[(base - 6) / PER_TASK]
    if u then
      fields[#fields + 1], fields[#fields + 2] = u[2], u[1]
      redis.call('HSET', P .. 'uq', u[1], id)
    end
    if tonumber(ARGV[latest + 10]) > 0 then
      expires = tonumber(ARGV[latest + 10])
    end
  end
  if expires > 0 then
    local dx = fmt(now + expires)
    fields[#fields + 1], fields[#fields + 2] = TASK_EXPIRES_MS, dx
    redis.call('ZADD', P .. 'exp', dx, id)
  end
  local plain = pr == '5' and key == '' and lm == '' and rq == '' -- (requires: lanes mode, as limits)
  if plain and delay <= 0 and laned[queue] == nil then
    laned[queue] = redis.call('EXISTS', P .. 'lanes:' .. queue) == 1
  end
  local dep = deps[base]
  if dep then
    fields[8] = 'waiting'
    fields[#fields + 1], fields[#fields + 2] = TASK_PARENTS, dep[3]
    fields[#fields + 1], fields[#fields + 2] = TASK_ON_FAILURE, dep[1]
    if dep[2] == '1' then
      fields[#fields + 1], fields[#fields + 2] = TASK_FEED, '1'
    end
  end
  local pid, load = nil, nil
  if pl and plain and delay <= 0 and not laned[queue] and not dep then -- placed at once: never in its queue
    pid, load = place_new(pl, queue, name, rq)
    if pid then
      fields[8] = 'assigned'
      fields[#fields + 1], fields[#fields + 2] = TASK_PROCESSOR, pid
      fields[#fields + 1], fields[#fields + 2] = TASK_PLACED_MS, fields[6] -- placed as created
    end
  end
  redis.call('HSET', tk, unpack(fields)) -- one write per record
  local qn = queue .. '\0' .. name
  if not named[qn] then -- the task names of a queue (qn:<queue>): a new one may need routing
    named[qn] = true
    if redis.call('SADD', P .. 'qn:' .. queue, name) == 1 then
      route_flag(P, queue)
      if not listed[queue] then -- a queue with a known task name is listed: both are only added
        listed[queue] = true
        redis.call('SADD', C.queues, queue)
      end
    end
  end
  if dep then
    wait_for(C, id, dep[4])
  elseif delay > 0 then
    redis.call('ZADD', C.delayed, fmt(now + delay), id)
    later[queue] = (later[queue] or 0) + 1
  elseif pid then
    hand_over(pl, id, pid, load)
    assigned[#assigned + 1], assigned[#assigned + 2] = id, pid
  else
    if laned[queue] == nil then
      laned[queue] = redis.call('EXISTS', P .. 'lanes:' .. queue) == 1
    end
    if pl then
      pl.behind[queue] = true -- the tasks of queue after this one are placed from the queue, in order
    end
    if plain and not laned[queue] then
      redis.call('RPUSH', P .. 'q:' .. queue, id) -- a plain queue (lib/lanes): no lane to keep
    else
      enqueue(C, id, queue, pr, key ~= '' and key or nil, (lm ~= '' and lm) or (rq ~= '' and '') or nil, false)
      laned[queue] = true
    end
    if not touched[queue] then
      touched[queue] = 0
      order[#order + 1] = queue
    end
    touched[queue] = touched[queue] + 1
  end
end

for q, n in pairs(later) do
  count_delayed(C, q, n)
end
if upd_order then
  for _, hid in ipairs(upd_order) do -- existing holders that a debounced submit updates
    local b = updates[hid]
    local tk = P .. 't:' .. hid
    redis.call('HSET', tk, TASK_ARGS, ARGV[b + 4])
    if holders[uniq[(b - 6) / PER_TASK][1]][2] == 'delayed' then
      redis.call('ZADD', C.delayed, fmt(now + uniq[(b - 6) / PER_TASK][3]), hid)
    end
    local expires = tonumber(ARGV[b + 10])
    if expires > 0 then
      redis.call('HSET', tk, TASK_EXPIRES_MS, fmt(now + expires))
      redis.call('ZADD', P .. 'exp', fmt(now + expires), hid)
    end
  end
end
if merged and #merged > 0 then
  redis.call('HINCRBY', C.stats, STAT_DEDUPLICATED, fmt(#merged / 3))
end
if #fresh > 0 then
  if not pl then -- else counted with the placements (placed)
    redis.call('HINCRBY', C.stats, STAT_SUBMITTED, #fresh)
  end
  if group ~= '' then
    local gk = P .. 'g:' .. group
    redis.call('HINCRBY', gk, GROUP_TOTAL, #fresh)
    redis.call('PERSIST', gk)
    local members = {}
    for _, base in ipairs(fresh) do
      members[#members + 1] = ARGV[base + 1]
    end
    redis.call('RPUSH', P .. 'gi:' .. group, unpack(members))
    redis.call('PERSIST', P .. 'gi:' .. group)
  end
end

if pl then
  for _, queue in ipairs(order) do
    assign_from_queue(pl, queue, touched[queue], assigned)
  end
  placed(pl, #fresh)
end
if #fresh > #assigned / 2 then
  wake_scheduler(C)
end
if merged then
  return {#fresh, existing, assigned, merged}
end
return {#fresh, existing, assigned}
