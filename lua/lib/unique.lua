--[[ lib/unique: the unique index, HASH uq: unique key -> the id of the task holding it.
  A task submitted with a unique key holds it from the submit that created it (lua/submit.lua)
  until the script that moves it past its unique_until point frees it: whatever starts it (lib
  lifecycle, start_task) for a key its record names in TASK_UNIQUE_STARTED; whatever finishes it
  (done, failed for good, cancelled, expired: lib/lifecycle, finish) for one in TASK_UNIQUE.
  Nothing else frees a key: no TTL, no reaper. The record names its key exactly while it holds
  it, so audit checks the index against the records both ways (luasched/core/unique.py).
  Includes: fields
]]

-- Task id frees the unique key it holds (key, named in its record's field: TASK_UNIQUE or
-- TASK_UNIQUE_STARTED). The index entry goes only if it still names id.
local function unique_free(C, id, key, field)
  local ix = C.prefix .. 'uq'
  if redis.call('HGET', ix, key) == id then
    redis.call('HDEL', ix, key)
  end
  redis.call('HDEL', C.prefix .. 't:' .. id, field)
end

-- The live task holding unique key `key`, as {id, state, started (true: it started once), name};
-- nil when none holds it (or the index names a task that is gone or finished: out of step,
-- which audit reports; the key is then taken anew).
local function unique_holder(C, key)
  local P = C.prefix
  local h = redis.call('HGET', P .. 'uq', key)
  if not h then
    return nil
  end
  local s, n, f = unpack(redis.call('HMGET', P .. 't:' .. h, TASK_STATE, TASK_ATTEMPTS, TASK_NAME))
  if s == 'waiting' or s == 'queued' or s == 'delayed' or s == 'assigned' or s == 'running' then
    return {h, s, n and true or false, f}
  end
  return nil
end
