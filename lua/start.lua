--[[ start: assigned -> running, the oldest tasks in a processor's inbox
  Used by a processor slot that has nothing to run. Each started task's attempt number goes up
  by one here. A replay of the same request (same rid, reply lost) answers as the first call did.
  Its memo (b<slot>) is apart from the ack's (m<slot>): a slot that pipelines ack + BLPOP + start
  and loses the reply replays both, and neither may overwrite the other's memo.
  Includes: fields, util, processors, lifecycle, replay, metrics
  KEYS[1..9] the fixed keys (see lib/util): uses stats running procs
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] processor id  ARGV[4] slot
  ARGV[5] request id  ARGV[6] want: how many tasks to start at most (1..4096; '' = 1)  ARGV[7] keep_s
  A pending task whose deadline has come is not started: it ends expired (lib/lifecycle), and
  the processor's load falls by one.
  Returns {'task', id, name, args_json, attempt, timeout_ms, ['task', ...]...} | {'empty'} | {'lost'}
    timeout_ms: the task's own, else the processor's default (register), '0' for none.
    'lost': the processor is not registered or its lease lapsed; it must not run anything.
  Invariant: each task moves from the processor's pending list to its running set, never out of it.
]]
local C = context(KEYS, ARGV[1])
C.now = clock_ms(ARGV[2])
local pid, slot, rid = ARGV[3], ARGV[4], ARGV[5]
local want = tonumber(ARGV[6] or '') or 1
C.keep_s = tonumber(ARGV[7] or '')
if not C.now or pid == '' or slot == '' or rid == '' or want < 1 or want > 4096 or not C.keep_s then
  return redis.error_reply('ERR luasched start: bad now_ms, processor, slot, request id, want or keep_s')
end
local pk = C.prefix .. 'p:' .. pid

local last, cap, dl, dto = unpack(redis.call('HMGET', pk, PROC_START_MEMO .. slot, PROC_CAPACITY, PROC_DEADLINE_MS,
  PROC_DEFAULT_TIMEOUT_MS))
local memo = memo_for(last, rid)
if memo then
  local again = memo_started(C, pid, memo[1], {})
  if #again > 0 then
    return again
  end
  return {'empty'}
end
if not lease_ok(C, pid, dl, cap) then
  return {'lost'}
end

local tasks, _, expired = start_many(C, pid, want, false, dto)
if expired > 0 then
  rerank(C, pid)
end
redis.call('HSET', pk, PROC_START_MEMO .. slot, rid .. '|' .. started_memo(tasks))
observed(C)
if #tasks == 0 then
  return {'empty'}
end
return started_reply(tasks)
