--[[ pause: pause or resume placing, for the whole namespace or one queue
  After a pause, no placing call (dispatch, dispatch at submit, dispatch on ack, take-next) takes
  a task of that scope; tasks keep arriving (submits, delayed tasks coming due, retries) and wait
  queued, and running tasks finish. A resume lets them go, and wakes the scheduler loops (the
  scope may hold queued tasks). Idempotent: pausing a paused scope keeps its first time.
  Includes: util
  KEYS[1..9] the fixed keys (see lib/util): uses wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] action: 'pause' or 'resume'
  ARGV[4] scope: '*' (the whole namespace) or a queue name
  Returns 1 when it changed something (paused a scope not paused, or resumed a paused one), else 0
  Invariant: moves no task; writes only the pauses (and a wake-up token).
]]
local C = context(KEYS, ARGV[1])
local now = clock_ms(ARGV[2])
local action, scope = ARGV[3], ARGV[4]
if not now or (action ~= 'pause' and action ~= 'resume') or not scope or scope == '' then
  return redis.error_reply('ERR luasched pause: bad now_ms, action or scope')
end
local key = C.prefix .. 'paused'
local field = scope == '*' and '*' or 'q:' .. scope
if action == 'pause' then
  return redis.call('HSETNX', key, field, fmt(now))
end
if redis.call('HDEL', key, field) == 0 then
  return 0
end
wake_scheduler(C)
return 1
