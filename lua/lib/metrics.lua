--[[ lib/metrics: statistics the scripts keep as they move tasks, so that every processor and every
  exporter reads the same figures, and history exists without Prometheus.
  Includes: util

  Two histograms, each observation one HINCRBY per key below:
    duration  how long an attempt ran (its ack's now - its record's STARTED_MS), by task name
    wait      how long a task waited before its first attempt started (now - its record's READY_MS,
              else its CREATED_MS), by queue; retries are not counted
  Fields: METRIC_DURATION / METRIC_WAIT .. '<bucket>:<label>' count the observations of a bucket
  (bucket = the index, from 0, of the first bound in METRIC_BOUNDS_MS that is >= the value; the
  number of bounds for the +Inf bucket); METRIC_DURATION_SUM / METRIC_WAIT_SUM .. '<label>' sum the
  values (ms). Bounds and retention are luasched/core/metrics.py's BOUNDS_MS and KEEP_S (a test
  compares).
    mt        HASH  since the namespace began: counts and sums (what the Prometheus histograms show)
    m:<min>   HASH  the counts of minute <min> (= ms // 60000); it expires METRIC_KEEP_S after the
                    write of a field new in it (these are statistics, never markers of a task)
]]
local METRIC_BOUNDS_MS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000,
  3600000}
local METRIC_KEEP_S = 3720

-- One observation of ms (clamped at 0) for label: its bucket's count and the sum in mt, its
-- bucket's count in this minute's key. Three HINCRBY (and an EXPIRE when the field is new).
local function observe(C, bucket_prefix, sum_prefix, label, ms)
  local P = C.prefix
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
  local f = bucket_prefix .. i .. ':' .. label
  local mt = P .. 'mt'
  redis.call('HINCRBY', mt, f, 1)
  redis.call('HINCRBY', mt, sum_prefix .. label, ms)
  local mk = P .. 'm:' .. fmt(math.floor(C.now / 60000))
  if redis.call('HINCRBY', mk, f, 1) == 1 then
    redis.call('EXPIRE', mk, METRIC_KEEP_S)
  end
end
