--[[ pause: pause or resume placing, for the whole namespace, a queue, or a key
  After a pause, no placing call (dispatch, dispatch at submit, dispatch on ack, take-next) takes
  a task of that scope; tasks keep arriving (submits, delayed tasks coming due, retries) and wait
  queued, and running tasks finish. A resume lets them go, and wakes the scheduler loops (the
  scope may hold queued tasks). Idempotent: pausing a paused scope keeps its first time.
  A key's lanes leave the ready index when a placing call meets them paused (lib/lanes: kp:<key>);
  resuming the key puts them back (those still paused by another scope leave again when met).
  Includes: util, lanes
  KEYS[1..9] the fixed keys (see lib/util): uses wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] action: 'pause' or 'resume'
  ARGV[4] scope: '*' (the whole namespace) or a queue name  ARGV[5] key ('' = none: the scope
  itself; else that key, in every queue with scope '*', or in that queue)
  Returns 1 when it changed something (paused a scope not paused, or resumed a paused one), else 0
  Invariant: moves no task; writes only the pauses, a paused key's lanes (back in the index) and a
  wake-up token.
]]
local C = context(KEYS, ARGV[1])
local now = clock_ms(ARGV[2])
local action, scope, key = ARGV[3], ARGV[4], ARGV[5] or ''
if not now or (action ~= 'pause' and action ~= 'resume') or not scope or scope == '' then
  return redis.error_reply('ERR luasched pause: bad now_ms, action or scope')
end
local hk = C.prefix .. 'paused'
local field
if key ~= '' then
  field = scope == '*' and 'k:' .. key or 'qk:' .. #scope .. ':' .. scope .. ':' .. key
else
  field = scope == '*' and '*' or 'q:' .. scope
end
if action == 'pause' then
  return redis.call('HSETNX', hk, field, fmt(now))
end
if redis.call('HDEL', hk, field) == 0 then
  return 0
end
if key ~= '' then
  local kp = C.prefix .. 'kp:' .. key
  for _, L in ipairs(redis.call('SMEMBERS', kp)) do
    activate(C, L, nil)
  end
  redis.call('DEL', kp)
end
wake_scheduler(C)
return 1
