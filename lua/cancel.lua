--[[ cancel: queued | delayed | assigned (not started) -> cancelled
  A task that started, or already finished, is not cancelled; the reply says its state.
  Removing from a queue costs O(position in the queue) (LREM), from delayed O(log n).
  A replay of the same request (same rid) answers 'cancelled' again.
  Includes: fields, util, lifecycle
  KEYS[1..9] the fixed keys (see lib/util): uses stats delayed failed idle
  ARGV[1] prefix  ARGV[2] now_ms ('' = server TIME)  ARGV[3] task id  ARGV[4] request id
  ARGV[5] keep_s
  Returns {'cancelled'} | {'unknown'} | {'not_cancellable', state}
  Invariant: the task leaves exactly one place for cancelled.
]]
local C = context(KEYS, ARGV[1])
local P = C.prefix
C.now, C.keep_s = clock_ms(ARGV[2]), tonumber(ARGV[5])
local id, rid = ARGV[3], ARGV[4]
if not C.now or id == '' or rid == '' or not C.keep_s then
  return redis.error_reply('ERR luasched cancel: bad now_ms, task id, request id or keep_s')
end
local tk = P .. 't:' .. id
local s, q, p, x, pr, k, dx = unpack(redis.call('HMGET', tk, TASK_STATE, TASK_QUEUE, TASK_PROCESSOR,
  TASK_CANCEL_REQUEST, TASK_PRIORITY, TASK_KEY, TASK_EXPIRES_MS))
if not s then
  return {'unknown'}
end
if x == rid then
  return {'cancelled'}
end
if not leave_waiting(C, id, s, q, p, pr, k) then
  return {'not_cancellable', s}
end
if dx then
  redis.call('ZREM', P .. 'exp', id)
end
redis.call('HSET', tk, TASK_CANCEL_REQUEST, rid)
finish(C, id, 'cancelled', nil, nil)
return {'cancelled'}
