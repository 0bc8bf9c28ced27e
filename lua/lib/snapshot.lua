--[[ lib/snapshot: what the audit's calls read of a task (read-only helpers).
  Includes: fields, util, lanes
]]

-- The records of ``ids`` as audit rows {id, state, queue, processor, attempts, max attempts, lane,
-- held} (lane: the name of the lane its priority and key give it in its queue, lib/lanes; held:
-- the limiters whose running counts it holds, comma-joined):
-- '' for a missing field (a missing record has state ''), the defaults for the fields a record
-- leaves out. ``seen`` (optional) skips ids already given and notes the new ones.
local function record_rows(P, ids, seen)
  local rows = {}
  for _, id in ipairs(ids) do
    if not (seen and seen[id]) then
      if seen then
        seen[id] = true
      end
      local r = redis.call('HMGET', P .. 't:' .. id, TASK_STATE, TASK_QUEUE, TASK_PROCESSOR, TASK_ATTEMPTS,
        TASK_MAX_ATTEMPTS, TASK_PRIORITY, TASK_KEY, TASK_HELD)
      local q = r[2] or DEFAULT_QUEUE
      rows[#rows + 1] = {id, r[1] or '', q, r[3] or '', r[4] or '0', r[5] or DEFAULT_MAX_ATTEMPTS,
        lane_name(q, r[6] or '5', r[7] or nil), r[8] or ''}
    end
  end
  return rows
end
