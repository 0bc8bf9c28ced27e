--[[ result: a task's state and, once finished, its result or error; optionally mark a waiter
  With mark = '1' and the task not finished, sets the record's waiter flag so that the script
  that finishes the task pushes a token to w:<id>, which the waiter blocks on (BLPOP).
  Includes: fields, util
  KEYS[1..9] the fixed keys (see lib/util): uses none (the task key is built from the prefix)
  ARGV[1] prefix  ARGV[2] task id  ARGV[3] mark '1' | '0'
  Returns {'unknown'} | {state} | {'done', result_json, by} | {'failed', error_json, by} | {'cancelled'}
    (by: the processor that ran the last attempt, '' if none)
  Invariant: moves no task.
]]
local C = context(KEYS, ARGV[1])
local id, mark = ARGV[2], ARGV[3]
if id == '' then
  return redis.error_reply('ERR luasched result: empty task id')
end
local tk = C.prefix .. 't:' .. id
local s, r, e, by = unpack(redis.call('HMGET', tk, TASK_STATE, TASK_RESULT, TASK_ERROR, TASK_LAST_PROCESSOR))
if not s then
  return {'unknown'}
end
if s == 'done' then
  return {s, r, by or ''}
elseif s == 'failed' then
  return {s, e, by or ''}
elseif s == 'cancelled' then
  return {s}
end
if mark == '1' then
  redis.call('HSET', tk, TASK_WAITER, '1')
end
return {s}
