--[[ lib/replay: answering a replayed call (its reply was lost) as the first call was answered.
  Requests that carry an id (rid) keep their reply for 30 s (r:<rid>); a processor slot's ack and
  start keep a memo in the processor's record instead (the tasks they started, still running).
  Includes: fields
]]
-- The reply a request already got (a replay of a call whose reply was lost), or nil.
local function replayed(C, rid)
  local seen = redis.call('GET', C.prefix .. 'r:' .. rid)
  if seen then
    return cjson.decode(seen)
  end
  return nil
end

-- Keep the reply of a request that changed something, for its replays; returns the reply.
local function remember(C, rid, reply, changed)
  if changed then
    redis.call('SET', C.prefix .. 'r:' .. rid, cjson.encode(reply), 'PX', 30000)
  end
  return reply
end

-- Split a memo "rid|field|field..." when it belongs to request rid; nil otherwise.
local function memo_for(memo, rid)
  if not memo or string.sub(memo, 1, #rid + 1) ~= rid .. '|' then
    return nil
  end
  local parts = {}
  for part in string.gmatch(string.sub(memo, #rid + 2) .. '|', '([^|]*)|') do
    parts[#parts + 1] = part
  end
  return parts
end

-- The task a slot's memo names, if pid still runs that attempt of it (its timeout as the start
-- gave it: its own, else the processor's default).
local function memo_task(C, pid, id, attempt)
  if id == '' then
    return nil
  end
  local f, a, s, p, n, o = unpack(redis.call('HMGET', C.prefix .. 't:' .. id, TASK_NAME, TASK_ARGS, TASK_STATE,
    TASK_PROCESSOR, TASK_ATTEMPTS, TASK_TIMEOUT_MS))
  if s ~= 'running' or p ~= pid or n ~= attempt then
    return nil
  end
  if not o or tonumber(o) <= 0 then
    o = redis.call('HGET', C.prefix .. 'p:' .. pid, PROC_DEFAULT_TIMEOUT_MS) or '0'
  end
  return {id, f, a, n, o}
end

-- Started tasks as a memo keeps them: "id/attempt,id/attempt" (ids hold neither '/' nor ',').
local function started_memo(tasks)
  local parts = {}
  for _, t in ipairs(tasks) do
    parts[#parts + 1] = t[1] .. '/' .. t[4]
  end
  return table.concat(parts, ',')
end

-- The reply entries {'task', ...} for a memo's started tasks that pid still runs.
local function memo_started(C, pid, text, out)
  for id, attempt in string.gmatch(text or '', '([^/,]+)/([^,]+)') do
    local t = memo_task(C, pid, id, attempt)
    if t then
      out[#out + 1] = 'task'
      for _, v in ipairs(t) do
        out[#out + 1] = v
      end
    end
  end
  return out
end
