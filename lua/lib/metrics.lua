--[[ lib/metrics: statistics the scripts keep as they move tasks, so that every processor and every
  exporter reads the same figures, and history exists without Prometheus.
  Includes: util

  Two histograms, each observation a count and a sum in mt (gathered by the call, written at its end):
    duration  how long an attempt ran (its ack's now - its record's STARTED_MS), by task name
    wait      how long a task waited before its first attempt started (now - its record's READY_MS,
              else its CREATED_MS), by queue; retries are not counted
  Fields: METRIC_DURATION / METRIC_WAIT .. '<bucket>:<label>' count the observations of a bucket
  (bucket = the index, from 0, of the first bound in METRIC_BOUNDS_MS that is >= the value; the
  number of bounds for the +Inf bucket); METRIC_DURATION_SUM / METRIC_WAIT_SUM .. '<label>' sum the
  values (ms). Bounds and retention are luasched/core/metrics.py's BOUNDS_MS and KEEP_S (a test
  compares).
    mt        HASH  since the namespace began: counts and sums (what the Prometheus histograms show)
    m:<min>   HASH  a copy of mt as it was at the first reap of minute <min> (= ms // 60000), kept
                    METRIC_KEEP_S: the history, a minute apart (one minute's counts: the difference
                    of two copies). Statistics, never markers of a task: a TTL is right for them.
]]
local METRIC_BOUNDS_MS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000,
  3600000}
local METRIC_KEEP_S = 3720

-- One observation of ms (clamped at 0) for label: its bucket's count and the sum, gathered in the
-- call's context (C.observed) until observed writes them: a call that acks or starts many tasks
-- of one name writes one HINCRBY per field, not two per task.
local function observe(C, bucket_prefix, sum_prefix, label, ms)
  if ms < 0 then
    ms = 0
  end
  local n = #METRIC_BOUNDS_MS
  local i = n
  for b = 1, n do
    if ms <= METRIC_BOUNDS_MS[b] then
      i = b - 1
      break
    end
  end
  local got = C.observed
  if not got then
    got = {}
    C.observed = got
  end
  local bf, sf = bucket_prefix .. i .. ':' .. label, sum_prefix .. label
  got[bf] = (got[bf] or 0) + 1
  got[sf] = (got[sf] or 0) + ms
end

-- Writes what the call observed to mt: every script that may observe ends with it. A field that
-- adds 0 is not written (a sum of 0 ms: a reader takes a missing sum as 0). Up to two fields go
-- as HINCRBY each; more (an ack that also starts the next task, a batch) as one HMGET and one
-- HSET of the sums: two commands, whatever the count.
local function observed(C)
  local got = C.observed
  if not got then
    return
  end
  C.observed = nil
  local mt = C.prefix .. 'mt'
  local fields = {}
  for field, n in pairs(got) do
    if n ~= 0 then -- a sum of 0 ms (a task that took or waited under a millisecond) adds nothing
      fields[#fields + 1] = field
    end
  end
  if #fields <= 2 then
    for _, field in ipairs(fields) do
      redis.call('HINCRBY', mt, field, got[field])
    end
    return
  end
  local was = redis.call('HMGET', mt, unpack(fields))
  local sums = {}
  for i, field in ipairs(fields) do
    sums[#sums + 1] = field
    sums[#sums + 1] = fmt((tonumber(was[i]) or 0) + got[field])
  end
  redis.call('HSET', mt, unpack(sums))
end

-- The history: the first call in a minute copies mt to that minute's key (O(fields of mt), once a
-- minute; one EXISTS otherwise).
local function keep_minute(C)
  local mk = C.prefix .. 'm:' .. fmt(math.floor(C.now / 60000))
  if redis.call('EXISTS', mk) == 1 then
    return
  end
  local all = redis.call('HGETALL', C.prefix .. 'mt')
  for i = 1, #all, 1000 do
    redis.call('HSET', mk, unpack(all, i, math.min(i + 999, #all)))
  end
  if #all > 0 then
    redis.call('EXPIRE', mk, METRIC_KEEP_S)
  end
end
