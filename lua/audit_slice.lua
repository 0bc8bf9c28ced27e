--[[ audit_slice: a slice of one big place with the records of its tasks (read-only, O(count))
  One of an audit's bounded calls (luasched/core/flows.py audit): the members at positions
  [start, start + count) of a queue, of the waiting or delayed set or of the dead letters, each with its
  record, read together in one call, so that each task is checked against its record as they
  stood at one moment. A place that changes between slices shifts its positions: a task that
  moved meanwhile may be read twice or not at all, and is checked where it was read.
  Includes: fields, util, snapshot, lifecycle
  KEYS[1..9] the fixed keys (see lib/util): uses delayed and failed
  ARGV[1] prefix  ARGV[2] place: 'queue', 'lane', 'waiting', 'delayed' or 'failed'  ARGV[3] the queue's name
  (place 'queue') or the lane's (place 'lane': a lane other than its queue's plain list, lib/lanes)
  ARGV[4] start  ARGV[5] count
  Returns {the place's size now, {rows of lib/snapshot record_rows}}; a waiting task's row ends
  with dn (its count of what it waits for not finished, '' for none) and how many are not finished
  (a task whose record is gone has finished)
  Invariant: moves no task, writes nothing.
]]
local C = context(KEYS, ARGV[1])
local place, start = ARGV[2], tonumber(ARGV[4])
local stop = start + tonumber(ARGV[5]) - 1
local size, ids
if place == 'queue' or place == 'lane' then
  local key = C.prefix .. (place == 'queue' and 'q:' or 'ln:') .. ARGV[3]
  size, ids = redis.call('LLEN', key), redis.call('LRANGE', key, start, stop)
elseif place == 'waiting' then
  local P = C.prefix
  size, ids = redis.call('ZCARD', P .. 'waiting'), redis.call('ZRANGE', P .. 'waiting', start, stop)
  local rows = record_rows(P, ids)
  for i, id in ipairs(ids) do -- and what it counts as not finished, against what is not
    local dn, dp = unpack(redis.call('HMGET', P .. 't:' .. id, TASK_DEPS_LEFT, TASK_PARENTS))
    local left = 0
    for _, ref in ipairs(split_commas(dp or '')) do
      -- a task whose record is gone has finished: a dead letter purged, or a done or cancelled
      -- one expired after keep_s while this task still waits for another
      local gone = string.sub(ref, 1, 2) == 't:' and redis.call('EXISTS', P .. ref) == 0
      if not gone and not parent_end(P, ref) then
        left = left + 1
      end
    end
    local row = rows[i]
    row[#row + 1] = dn or ''
    row[#row + 1] = fmt(left)
  end
  return {size, rows}
else
  local key = place == 'delayed' and C.delayed or C.failed
  size, ids = redis.call('ZCARD', key), redis.call('ZRANGE', key, start, stop)
end
return {size, record_rows(C.prefix, ids)}
