--[[ lib/records: what a new task's record holds, built the same way by submit and by a schedule's
  tick (lib/schedules): its policy read from the policy field, its optional fields written only
  where they differ from their defaults, and the depth its queue's max_pending caps.
  Includes: fields, util
]]

-- The parts of a policy field, "<priority 0..9>\n<limiter names>\n<requires>\n<key>" ('' for the
-- defaults; luasched/core/options.py policy_field): priority, limits, requires, key ('' for none).
-- Nothing (nil) when it is malformed.
local function policy_parts(pol)
  if pol == '' then
    return '5', '', '', ''
  end
  local pr, lm, rq, key = string.match(pol, '^(%d)\n([^\n]*)\n([^\n]*)\n(.*)$')
  if not pr or (rq ~= '' and string.sub(rq, 1, 1) ~= '[') then
    return nil
  end
  return pr, lm, rq, key
end

-- Append to fields (a record's HSET arguments) a new task's optional fields, each only where it
-- differs from its default (lib/util DEFAULT_*: a smaller record per queued task). o: the
-- timeout in ms ('0': none).
local function optional_fields(fields, queue, max_attempts, backoff_ms, o, pr, key, lm, rq)
  local n = #fields
  if queue ~= DEFAULT_QUEUE then
    fields[n + 1], fields[n + 2], n = TASK_QUEUE, queue, n + 2
  end
  if max_attempts ~= DEFAULT_MAX_ATTEMPTS then
    fields[n + 1], fields[n + 2], n = TASK_MAX_ATTEMPTS, max_attempts, n + 2
  end
  if backoff_ms ~= DEFAULT_BACKOFF_MS then
    fields[n + 1], fields[n + 2], n = TASK_BACKOFF_MS, backoff_ms, n + 2
  end
  if tonumber(o) > 0 then
    fields[n + 1], fields[n + 2], n = TASK_TIMEOUT_MS, o, n + 2
  end
  if pr ~= '5' then
    fields[n + 1], fields[n + 2], n = TASK_PRIORITY, pr, n + 2
  end
  if key ~= '' then
    fields[n + 1], fields[n + 2], n = TASK_KEY, key, n + 2
  end
  if lm ~= '' then
    fields[n + 1], fields[n + 2], n = TASK_LIMITS, lm, n + 2
  end
  if rq ~= '' then
    fields[n + 1], fields[n + 2] = TASK_REQUIRES, rq
  end
end

-- The tasks queue q holds that its max_pending caps: queued (its list and its lanes) and delayed.
local function pending_depth(P, q)
  return redis.call('LLEN', P .. 'q:' .. q) + tonumber(redis.call('HGET', P .. 'lq', q) or '0')
    + tonumber(redis.call('HGET', P .. 'qd', q) or '0')
end
