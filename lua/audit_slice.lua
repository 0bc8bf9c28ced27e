--[[ audit_slice: a slice of one big place with the records of its tasks (read-only, O(count))
  One of an audit's bounded calls (luasched/core/flows.py audit): the members at positions
  [start, start + count) of a queue, of the delayed set or of the dead letters, each with its
  record, read together in one call, so that each task is checked against its record as they
  stood at one moment. A place that changes between slices shifts its positions: a task that
  moved meanwhile may be read twice or not at all, and is checked where it was read.
  Includes: util, snapshot
  KEYS[1..9] the fixed keys (see lib/util): uses delayed and failed
  ARGV[1] prefix  ARGV[2] place: 'queue', 'lane', 'delayed' or 'failed'  ARGV[3] the queue's name
  (place 'queue') or the lane's (place 'lane': a lane other than its queue's plain list, lib/lanes)
  ARGV[4] start  ARGV[5] count
  Returns {the place's size now, {{id, s, q, p, n, m, lane, held}...}}
  Invariant: moves no task, writes nothing.
]]
local C = context(KEYS, ARGV[1])
local place, start = ARGV[2], tonumber(ARGV[4])
local stop = start + tonumber(ARGV[5]) - 1
local size, ids
if place == 'queue' or place == 'lane' then
  local key = C.prefix .. (place == 'queue' and 'q:' or 'ln:') .. ARGV[3]
  size, ids = redis.call('LLEN', key), redis.call('LRANGE', key, start, stop)
else
  local key = place == 'delayed' and C.delayed or C.failed
  size, ids = redis.call('ZCARD', key), redis.call('ZRANGE', key, start, stop)
end
return {size, record_rows(C.prefix, ids)}
