--[[ lib/snapshot: what the audit's calls read of a task (read-only helpers).
  Includes: fields, util, lanes
]]

-- The records of ``ids`` as audit rows {id, state, queue, processor, attempts, max attempts, lane,
-- held, until, unique key, its holder} (lane: the name of the lane its priority and key give it
-- in its queue, lib/lanes; held: the limiters whose running counts it holds, comma-joined; until:
-- 'finished' or 'started' by which field names a unique key it holds, 'both', or '' for none;
-- its holder: whom the unique index gives that key, lib/unique):
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
        TASK_MAX_ATTEMPTS, TASK_PRIORITY, TASK_KEY, TASK_HELD, TASK_UNIQUE, TASK_UNIQUE_STARTED)
      local q = r[2] or DEFAULT_QUEUE
      local till = (r[9] and r[10] and 'both') or (r[9] and 'finished') or (r[10] and 'started') or ''
      local key = r[9] or r[10] or ''
      rows[#rows + 1] = {id, r[1] or '', q, r[3] or '', r[4] or '0', r[5] or DEFAULT_MAX_ATTEMPTS,
        lane_name(q, r[6] or '5', r[7] or nil), r[8] or '', till, key,
        key ~= '' and redis.call('HGET', P .. 'uq', key) or ''}
    end
  end
  return rows
end
