--[[ limits: the limiters and their state now (read-only)
  Cost: O(limiters + running counts held): every running count is held by an attempt, so the
  second is bounded by the tasks assigned or running.
  Includes: util, lanes
  KEYS[1..9] the fixed keys (see lib/util): uses none
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)
  Returns {now_ms, {{name, of, rate, per_ms, burst, max_running, running, waiting}...}} sorted by
  name: each limiter made by limit() (of ''), and each name a pattern governs that holds running
  counts now (of: the pattern); '' where a limiter has none (rate, max_running). running: attempts
  that hold a count of it; waiting: lanes (queue, priority, key) waiting for one. A pattern's own
  row sums its names'.
  Invariant: moves no task, writes nothing (it may run on a replica).
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
local now = clock_ms(ARGV[2])
local specs = {}
local flat = redis.call('HGETALL', P .. 'lim')
for i = 1, #flat, 2 do
  specs[flat[i]] = flat[i + 1]
end
local held = {}
flat = redis.call('HGETALL', P .. 'lr')
for i = 1, #flat, 2 do
  held[flat[i]] = flat[i + 1]
end
local pats = redis.call('SMEMBERS', P .. 'limpat')
local rows, own = {}, {}
local function row(name, of, spec)
  local r, per, b, m = string.match(spec, '^(%S+) (%S+) (%S+) (%S+)$')
  local entry = {name, of, r == '-' and '' or r, per, b, m == '-' and '' or m, tonumber(held[name] or '0'),
    redis.call('ZCARD', P .. 'lpk:' .. name)}
  rows[#rows + 1] = entry
  return entry
end
for name, spec in pairs(specs) do
  own[name] = row(name, '', spec)
end
for name in pairs(held) do
  local best = not specs[name] and pattern_for(pats, name)
  if best then
    local r = row(name, best, specs[best])
    own[best][7] = own[best][7] + r[7]
    own[best][8] = own[best][8] + r[8]
  end
end
table.sort(rows, function(a, b) return a[1] < b[1] end)
for _, r in ipairs(rows) do
  r[7], r[8] = fmt(r[7]), fmt(r[8])
end
return {fmt(now), rows}
