--[[ schedules: the schedules with their records, and the state of each one's last task (read-only)
  The index schd in order (soonest pending tick first, the paused last), at most limit of them.
  Scheduler.schedules lists them; an audit checks them (luasched/core/schedules.py check_schedules).
  Includes: fields
  KEYS[1..9] the fixed keys (see lib/util): uses none
  ARGV[1] prefix  ARGV[2] limit (1..10000)  ARGV[3] name ('' = every schedule; else that one alone)
  Returns {more 0|1, {{name, score, {record, flat}, state of its last task ('' = none or gone)}...}}
  Invariant: writes nothing.
]]
local P = ARGV[1]
local limit = tonumber(ARGV[2])
if not limit or limit < 1 or limit > 10000 then
  return redis.error_reply('ERR luasched schedules: bad limit')
end
local idx = P .. 'schd'
local flat
if ARGV[3] ~= '' then
  local score = redis.call('ZSCORE', idx, ARGV[3])
  flat = score and {ARGV[3], score} or {}
else
  flat = redis.call('ZRANGE', idx, 0, limit - 1, 'WITHSCORES')
end
local rows = {}
for i = 1, #flat, 2 do
  local sk = P .. 'sch:' .. flat[i]
  local last = redis.call('HGET', sk, SCHED_LAST_TASK)
  local state = last and redis.call('HGET', P .. 't:' .. last, TASK_STATE) or ''
  rows[#rows + 1] = {flat[i], flat[i + 1], redis.call('HGETALL', sk), state}
end
return {redis.call('ZCARD', idx) > limit and '1' or '0', rows}
