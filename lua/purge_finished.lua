--[[ purge_finished: failed (dead letter) -> gone, the oldest first
  A task that ended done or cancelled leaves by itself (its record expires after keep_s); a dead
  letter stays until it is retried, or purged here. Looks at up to limit dead letters from rank
  start of the failed set (the oldest first) that failed at or before now_ms - older_than_ms; each
  one's record, result wake-up list (w:<id>) and children list (tc:<id>) are deleted, and it leaves
  the dead letters. A member of a group that has not finished is kept: the tasks that wait for the
  group read its error when the group ends. Kept ones are counted as skipped and stay at the front:
  the next call of the same purge starts past them (start + skipped), so a caller that loops while
  more is 1 ends. An id of the failed set whose record is gone (evicted) or holds another state is
  stale: it only leaves the set, and is counted apart. O(limit) per call.
  The failed counter goes down by one per dead letter that leaves; the purged counter goes up by
  one per task that leaves the namespace (a purged one, and a stale one without a record), so
  that submitted still equals the tasks in each place plus those purged. The finished totals
  (stats done, rate buckets, what metrics report as finished) never go down.
  Includes: fields, util, lifecycle, replay
  KEYS[1..9] the fixed keys (see lib/util): uses stats failed
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] older_than_ms (>= 0)
  ARGV[4] start (rank in the failed set where the look begins: the ones kept before)
  ARGV[5] limit (1..10000)  ARGV[6] request id
  A replay of a request that changed something answers as the first call did.
  Returns {purged, skipped, stale, more (1: a dead letter old enough lies past those looked at), now_ms}
  Invariant: a purged task leaves its one place (the dead letters) and the namespace.
]]
local C = context(KEYS, ARGV[1])
local P, stats, failed = C.prefix, C.stats, C.failed
local now = clock_ms(ARGV[2])
local older, start, limit, rid = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
if not now or not older or older < 0 or not start or start < 0 or not limit or limit < 1 or limit > 10000
    or not rid or rid == '' then
  return redis.error_reply('ERR luasched purge_finished: bad now_ms, older_than_ms, start, limit or request id')
end
local seen = replayed(C, rid)
if seen then
  return seen
end
local cutoff = now - older
-- one more than limit: whether any is left past them (by rank, O(log n + limit); never by score
-- with an offset, which walks the ones before it)
local rows = redis.call('ZRANGE', failed, start, start + limit, 'WITHSCORES')
local purged, skipped, stale, more = 0, 0, 0, 0
for i = 1, #rows, 2 do
  local id, at = rows[i], tonumber(rows[i + 1])
  if at > cutoff then
    break
  end
  if (i + 1) / 2 > limit then
    more = 1
    break
  end
  local tk = P .. 't:' .. id
  local s, g = unpack(redis.call('HMGET', tk, TASK_STATE, TASK_GROUP))
  if s ~= 'failed' then
    redis.call('ZREM', failed, id)
    redis.call('HINCRBY', stats, STAT_FAILED, -1)
    if not s then -- gone already: it has left the namespace
      redis.call('HINCRBY', stats, STAT_PURGED, 1)
    end
    stale = stale + 1
  elseif g and not parent_end(P, 'g:' .. g) then
    skipped = skipped + 1
  else
    redis.call('DEL', tk, P .. 'w:' .. id, P .. 'tc:' .. id)
    redis.call('ZREM', failed, id)
    redis.call('HINCRBY', stats, STAT_FAILED, -1)
    redis.call('HINCRBY', stats, STAT_PURGED, 1)
    purged = purged + 1
  end
end
return remember(C, rid, {purged, skipped, stale, more, fmt(now)}, purged + stale > 0)
