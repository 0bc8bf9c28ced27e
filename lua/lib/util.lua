--[[ lib/util: what every script may need and that knows no record: time, numbers, lists, wake-ups.
  Includes: (none)

  How shared Lua works: luasched/scripts.py (with luasched/luatree.py) sends each script as the libraries its header
  declares on an "Includes:" line (and those they declare, dependencies first), then the script.
  Of each library only the top-level locals the script uses, directly or through other helpers,
  are sent. A file that uses a helper of a library it does not declare is refused.
  Each helper is a local function of its explicit arguments: no globals, no KEYS or ARGV. What
  every call shares is one context C, made once per call by context(KEYS, prefix): C.prefix and
  each fixed key by name (C.stats, C.delayed, ...), then C.now (ms) and C.keep_s (how long
  finished records stay) once the script has parsed them. The context is always named C (a local
  or a parameter): the loader writes C.<name> as a slot of the call's KEYS table and refuses a
  name the context does not hold. A helper that reads a field of C many times in a loop binds it
  to a local first.
  P is the namespace prefix "luasched:{ns}:". Every key built from it carries the namespace hash
  tag and lands on the same cluster slot as the KEYS given. Key names must match
  luasched/core/keys.py (tests/unit/test_keys.py runs both and compares).

  The keyspace. The fixed keys, passed in this order as KEYS to every script:
    KEYS[1] stats    HASH  counters (STAT_*, below), when dispatch last ran
    KEYS[2] delayed  ZSET  task id -> due ms
    KEYS[3] running  ZSET  task id -> deadline ms (+inf when the task has no timeout)
    KEYS[4] failed   ZSET  task id -> failed-at ms (the dead letters)
    KEYS[5] queues   SET   names of every queue used
    KEYS[6] procs    ZSET  processor id -> lease deadline ms (the registry)
    KEYS[7] idle     SET   processors with load < capacity
    KEYS[8] wake     LIST  wake-up token for scheduler loops (at most one element)
    KEYS[9] cards    HASH  processor id -> "capacity lease-deadline-ms queues" (its record's CAPACITY,
                           DEADLINE_MS and QUEUES in one field: dispatch reads many processors in
                           one HMGET)

  Keys built from P (record fields by their constants: see "Field names" below):
    t:<id>       HASH  task record, TASK_*: NAME, QUEUE, ARGS (JSON), STATE, ATTEMPTS (started),
                       MAX_ATTEMPTS, TIMEOUT_MS, BACKOFF_MS, PROCESSOR (holding it), GROUP
                       (QUEUE, ATTEMPTS, MAX_ATTEMPTS, BACKOFF_MS, TIMEOUT_MS left out while they
                       hold their defaults: see DEFAULT_* below), RESULT (JSON), ERROR (JSON),
                       LAST_PROCESSOR (of the last attempt), WAITER flag, CANCEL_REQUEST id,
                       CREATED_MS, STARTED_MS, FINISHED_MS, PLACED_MS (its latest attempt's placing),
                       ATTEMPTS_LOG (its attempts that ended without finishing it: lib/lifecycle)
    w:<id>       LIST  wake-up token for result() waiters of task <id>
    waiting      ZSET  task id -> created ms: the tasks that wait for others (PARENTS: t:<id>,
                       g:<gid>; DEPS_LEFT of them not finished, DEPS_BAD ended other than done)
    tc:<id>      LIST  the tasks waiting for task <id> (its record's CHILDREN flag)
    gc:<gid>     LIST  the tasks waiting for group <gid> (its record's GROUP_CHILDREN flag)
    q:<queue>    LIST  queued task ids, head first
    ik:<kind>:<queue> ZSET  processor id -> load * 2^40 + seq, for the processors of kind <kind>
                       (luasched/core/kinds: 16 hex digits) serving <queue> with a free slot: the
                       idle ranking of that queue and kind (lib/processors rank_key)
    kinds        HASH  kind -> its definition (JSON: its processors' labels and task names)
    kindn        HASH  kind -> how many registered processors are of it (field gone at 0)
    qk:<queue>   HASH  kind -> how many registered processors of it serve <queue> (gone at 0)
    kn:<kind>    SET   the task names its processors run, as placement asks them ('' alone: they
                       know no task, and take any)
    qn:<queue>   SET   the task names ever submitted to <queue>
    qr           HASH  queue -> '1' while some kind serving it lacks one of those names (lib/routing)
    p:<pid>      HASH  processor, PROC_*: CAPACITY, QUEUES (comma-joined), LEASE_MS, NAME,
                       REGISTERED_MS, HEARTBEAT_MS (the last), DEADLINE_MS (the lease's: the same
                       as its score in procs, written with it, so that a script that reads the
                       record learns the lease in the same HMGET), TURN (which of its queues a take
                       starts with), ACK_MEMO .. <slot> / START_MEMO .. <slot> (the replay memo of a
                       slot's ack / start), DEFAULT_TIMEOUT_MS (of its tasks that have none),
                       STUCK (how many of its slots are still in the call of an attempt that reap
                       ended past its timeout: part of its load until their acks) and one
                       REAPED_CALL .. <attempt>:<id> per such call (-> when it started, ms)
    p:<pid>:i    LIST  inbox, assigned and not started
    p:<pid>:r    SET   inbox, started (running)
    p:<pid>:w    LIST  wake-up tokens for the processor's slots (never more than its pending)
    g:<gid>      HASH  group, GROUP_*: TOTAL members, DONE FAILED CANCELLED counts
    rate:<n>     HASH  tasks finished in the 10 s from n * 10 s, RATE_*: DONE FAILED CANCELLED
                       (expire after 2 min)
    mt, m:<min>  HASH  histograms of durations and queue waits (METRIC_*), and their copies a minute
                       apart (lib/metrics)
    r:<rid>      STRING the reply of request <rid> (JSON), kept 30 s so that a replay answers the same
    gi:<gid>     LIST  the member ids of group <gid>, in submission order
    gs:<gid>     STREAM one entry per member of group <gid> that finished, EVENT_*: TASK id, STATE
    paused       HASH  what is paused: '*' (the whole namespace) or 'q:<queue>' -> ms paused at;
                       nothing of a paused scope is placed (lua/pause.lua sets and clears it)
    qd           HASH  queue -> how many of its tasks wait in delayed (field gone at 0)
    exp          ZSET  task id -> its deadline ms (TASK_EXPIRES_MS), while it waits (queued,
                       delayed, assigned): start takes it out; an expiry or a cancel ends it
    qmax         HASH  queue -> max_pending: submit refuses what would bring its waiting tasks
                       (queued, in its lanes, delayed) above it (lua/policy.lua sets it)
  The stats HASH (KEYS[1]) holds STAT_*: SUBMITTED ASSIGNED DONE FAILED CANCELLED EXPIRED SEQ
  LAST_DISPATCH_MS.
  Each kind of key has its own prefix, and the ids after it never contain the next kind's
  prefix, so no task, queue or group id can name another key (task ids may contain ':').

  Field names. A Lua file never spells a record's field: luasched/core/fields.py is the one
  table of them, shared with Python, and the loader makes it into the pseudo-library "fields",
  which a file includes like any other library. What is sent has each constant the file uses
  written as its literal (Lua 5.1 has no compile-time constants; as locals, every helper's closure
  captured them on every call: 2.3 us more per ack). One constant per field,
  <KIND>_<ATTRIBUTE> in capitals: KIND is TASK (t:<id>), PROC (p:<pid>), GROUP
  (g:<gid>), STAT (stats), RATE (rate:<n>) or EVENT (an entry of gs:<gid>); e.g. TASK_STATE = 's',
  PROC_CAPACITY = 'c', GROUP_TOTAL = 'total'. PROC_ACK_MEMO and PROC_START_MEMO are prefixes: the
  field is the prefix followed by the slot. A stored name means one thing across the kinds, and the
  counters by final state are named by the state (STAT_DONE = GROUP_DONE = RATE_DONE = 'done'):
  finishing a task adds one to the field named by its state (HINCRBY key state 1).
]]
local TWO40 = 1099511627776

-- The context of one call is its KEYS table: the fixed keys (by name: C.stats ... C.cards), then
-- C.prefix, C.now, C.keep_s and C.observed (lib/metrics). The loader writes each C.<name> as its
-- slot (luasched/luatree.py CONTEXT): a table of named fields made on every call was 744 bytes
-- more per call, which on a real server's Lua heap cost 4.5 us more per one-task submit; KEYS is
-- there already.
local function context(C, prefix)
  C.prefix = prefix
  return C
end

-- A task record leaves out fields that hold these values, and reads a missing one as its default:
-- every queued task has a record, and a smaller one fits a smaller allocation.
local DEFAULT_QUEUE, DEFAULT_MAX_ATTEMPTS, DEFAULT_BACKOFF_MS = 'default', '3', '1000'

local function fmt(n)
  return string.format('%.0f', n)
end

-- Every queue used (the queues SET), sorted, and queue -> how many tasks it holds queued: its
-- list q:<queue> and its lanes other than that list (the lq HASH, lib/lanes). O(queues).
local function queue_depths(C)
  local P = C.prefix
  local names = redis.call('SMEMBERS', C.queues)
  table.sort(names)
  local in_lanes = redis.call('HGETALL', P .. 'lq')
  local laned = {}
  for i = 1, #in_lanes, 2 do
    laned[in_lanes[i]] = tonumber(in_lanes[i + 1])
  end
  local depths = {}
  for _, q in ipairs(names) do
    depths[q] = redis.call('LLEN', P .. 'q:' .. q) + (laned[q] or 0)
  end
  return names, depths
end

local function clock_ms(given)
  if given ~= '' then
    return tonumber(given)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split_commas(s)
  local out = {}
  for part in string.gmatch(s, '[^,]+') do
    out[#out + 1] = part
  end
  return out
end

-- cmd key followed by args, in calls of at most 4000 args (Lua's unpack has a limit).
local function call_chunked(cmd, key, args)
  for i = 1, #args, 4000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 3999, #args)))
  end
end

-- The pauses of the namespace (the HASH P..'paused': field '*' for the whole namespace, or
-- 'q:<queue>'; value the ms it was paused at), as a set, or nil when nothing is paused (the
-- usual case: one HGETALL of a missing key per placing call).
local function pauses(C)
  local flat = redis.call('HGETALL', C.prefix .. 'paused')
  if #flat == 0 then
    return nil
  end
  local set = {}
  for i = 1, #flat, 2 do
    set[flat[i]] = true
  end
  return set
end

-- Whether queue q is paused (by itself or with the whole namespace), given pauses(C).
local function is_paused(set, q)
  return set ~= nil and (set['*'] ~= nil or set['q:' .. q] ~= nil)
end

-- qd HASH <queue> -> how many of its tasks wait in delayed (field gone at 0). Kept by exactly the
-- scripts that move a task into or out of delayed (submit, promote, a retry later, cancel);
-- submit reads it for a queue's max_pending (qmax HASH <queue> -> the cap).
local function count_delayed(C, q, n)
  if redis.call('HINCRBY', C.prefix .. 'qd', q, n) <= 0 then
    redis.call('HDEL', C.prefix .. 'qd', q)
  end
end

-- Adds to the counters of HASH key: adds is a list field, n, field, n, ... (an n of 0 adds
-- nothing); sets (nil: none) is a list field, value, ... written as given. One field alone goes
-- as HINCRBY; more as one HMGET of the counters and one HSET of every field: two commands, where
-- one HINCRBY per counter was one each (each redis.call costs more than the Lua around it).
local function add_counts(key, adds, sets)
  local fields, by = {}, {}
  for i = 1, #adds, 2 do
    if adds[i + 1] ~= 0 then
      local k = #fields + 1
      fields[k], by[k] = adds[i], adds[i + 1]
    end
  end
  if not sets and #fields <= 1 then
    if #fields == 1 then
      redis.call('HINCRBY', key, fields[1], by[1])
    end
    return
  end
  local out = sets or {}
  if #fields > 0 then
    local was = redis.call('HMGET', key, unpack(fields))
    for i, field in ipairs(fields) do
      out[#out + 1], out[#out + 2] = field, fmt((tonumber(was[i]) or 0) + by[i])
    end
  end
  redis.call('HSET', key, unpack(out))
end

local function wake_scheduler(C)
  if redis.call('LLEN', C.wake) == 0 then
    redis.call('RPUSH', C.wake, '1')
  end
end
