--[[ policy: create, change or remove a limiter; set a key's weight; set a queue's priority aging
  What lib/lanes reads when it chooses the next task (its header says where each lives). A
  change takes effect at the next placing call, which this call wakes; a limiter given more room
  (or removed) lets lanes that waited for its running counts go at once, and every lane a rate
  held back is looked at again (O(those lanes), once: a limiter is set far more rarely than used).
  Includes: util, lanes
  KEYS[1..9] the fixed keys (see lib/util): uses wake
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] op, then by op:
    'limit'   name rate ('' = none) per_ms burst max_running ('' = none)  (a name ending in '*' is
              a pattern: the limiter of every name with that prefix that has none of its own)
    'unlimit' name
    'weight'  key weight (a number > 0)
    'queue'   queue aging_ms ('' = strict priorities) max_pending ('' = no cap); either may be
              '=' (left as it is)
  Returns 'created' | 'updated' (limit), 1 | 0 (unlimit: whether it existed), 'ok' (weight, queue)
  Invariant: moves no task out of its queue; lanes only move between their indexes.
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
local op, name = ARGV[3], ARGV[4]
if not now or not name or name == '' then
  return redis.error_reply('ERR luasched policy: bad now_ms or name')
end
local reply
if op == 'limit' then
  local rate, per, burst, max = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
  if (rate ~= '' and not (tonumber(rate) and tonumber(rate) > 0)) or not per or per <= 0 or not burst
      or burst < 1 or (max ~= '' and not (tonumber(max) and tonumber(max) >= 1)) or (rate == '' and max == '')
      or string.find(name, '[,%s]') or string.find(string.sub(name, 1, -2), '*', 1, true) then
    return redis.error_reply('ERR luasched policy: bad limiter ' .. name)
  end
  local spec = (rate == '' and '-' or rate) .. ' ' .. ARGV[6] .. ' ' .. ARGV[7] .. ' ' .. (max == '' and '-' or max)
  reply = redis.call('HSET', P .. 'lim', name, spec) == 1 and 'created' or 'updated'
  rates_changed(C) -- a rate may hold back less now (this one, or a pattern's it overrides)
  if string.sub(name, -1) == '*' then
    redis.call('SADD', P .. 'limpat', name)
  else
    release_counts(C, policy(C, nil), name, tonumber(redis.call('HGET', P .. 'lr', name) or '0'))
  end
elseif op == 'unlimit' then
  reply = redis.call('HDEL', P .. 'lim', name)
  rates_changed(C)
  redis.call('SREM', P .. 'limpat', name)
  if string.sub(name, -1) ~= '*' then
    redis.call('DEL', P .. 'lt:' .. name)
    unpark(C, name, nil)
  end
elseif op == 'weight' then
  local w = tonumber(ARGV[5])
  if not w or w <= 0 or w ~= w or w == math.huge then
    return redis.error_reply('ERR luasched policy: a weight must be a number > 0')
  end
  if w == 1 then
    redis.call('HDEL', P .. 'weights', name)
  else
    redis.call('HSET', P .. 'weights', name, ARGV[5])
  end
  reply = 'ok'
elseif op == 'queue' then
  local aging, cap = ARGV[5], ARGV[6] or '='
  if aging ~= '' and aging ~= '=' and not (tonumber(aging) and tonumber(aging) >= 1) then
    return redis.error_reply('ERR luasched policy: priority aging must be at least 1 ms')
  end
  if cap ~= '' and cap ~= '=' and not (tonumber(cap) and tonumber(cap) >= 0 and tonumber(cap) % 1 == 0) then
    return redis.error_reply('ERR luasched policy: max_pending must be a whole number >= 0')
  end
  if aging == '' then
    redis.call('HDEL', P .. 'qconf', name)
  elseif aging ~= '=' then
    redis.call('HSET', P .. 'qconf', name, aging)
  end
  if cap == '' then
    redis.call('HDEL', P .. 'qmax', name)
  elseif cap ~= '=' then
    redis.call('HSET', P .. 'qmax', name, cap)
  end
  reply = 'ok'
else
  return redis.error_reply('ERR luasched policy: op must be limit|unlimit|weight|queue, not ' .. tostring(op))
end
wake_scheduler(C)
return reply
