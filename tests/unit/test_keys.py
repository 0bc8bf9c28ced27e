"""The key names the scripts build match luasched/core/keys.py, and all carry the namespace hash tag;
the field names they store are luasched/core/fields.py's, each meaning one thing."""

from __future__ import annotations

import pytest

from luasched import scripts
from luasched.core import fields, ops
from luasched.core.keys import FIXED, Keys
from luasched.core.states import FINISHED
from luasched.scripts import lua_dir
from tests.scripts.util import ack, audit_ok, error_json, start


@pytest.fixture
def busy(sched):
    """A namespace where every kind of key exists: a queued, a delayed, an assigned, a running and
    a failed task, an idle processor, a finished group, and a result waiter's token."""
    p = sched.processor(capacity=4, queues=("default",), lease=600)
    assert p.register()
    g_proc = sched.processor(capacity=2, queues=("g",), lease=600)
    assert g_proc.register()
    a, b = sched.submit_many("add", [(1,), (2,)])
    c = sched.submit("add", _queue="unserved")  # stays queued
    late = sched.submit("add", _delay=60)
    assert len(sched.dispatch()) == 2  # a and b assigned
    running = start(sched, p.id).task  # a runs, b pending
    group = sched.map("add", [(1,), (2,)], queue="g", max_attempts=1)
    sched.call(ops.result(sched.ns, group.ids[0], mark=True))  # a waiter is there for member 0
    assert len(sched.dispatch()) == 2
    first = start(sched, g_proc.id, "x").task
    ack(sched, g_proc.id, first, "done", "1", slot="x")
    second = start(sched, g_proc.id, "y").task
    ack(sched, g_proc.id, second, "error", error_json(), slot="y")  # dead letter
    audit_ok(sched)
    return {"p": p, "a": a, "b": b, "c": c, "late": late, "running": running, "group": group}


def key_type(sched, key):
    return ops.text(sched.client.type(key))


def test_every_named_key_exists_with_its_type(sched, busy):
    k, pid, gid = sched.keys, busy["p"].id, busy["group"].id
    expected = {
        k.task(busy["a"].id): "hash",
        k.task_wake(busy["group"].ids[0]): "list",
        k.queue("unserved"): "list",
        k.idle_rank(busy["p"].kind, "default"): "zset",
        k.kinds: "hash",
        k.kind_counts: "hash",
        k.queue_kinds("default"): "hash",
        k.processor(pid): "hash",
        k.inbox(pid): "list",
        k.inbox_running(pid): "set",
        k.processor_wake(pid): "list",
        k.group(gid): "hash",
        k.group_stream(gid): "stream",
        k.stats: "hash",
        k.delayed: "zset",
        k.running: "zset",
        k.failed: "zset",
        k.queues: "set",
        k.procs: "zset",
        k.idle: "set",
        k.wake: "list",
        k.cards: "hash",
    }

    assert {key: key_type(sched, key) for key in expected} == expected


def test_named_keys_hold_what_the_scripts_put_there(sched, busy):
    k, pid = sched.keys, busy["p"].id

    assert ops.text(sched.client.lrange(k.queue("unserved"), 0, -1)) == [busy["c"].id]
    assert ops.text(sched.client.lrange(k.inbox(pid), 0, -1)) == [busy["b"].id]
    assert ops.text(list(sched.client.smembers(k.inbox_running(pid)))) == [busy["a"].id]
    assert sched.client.zscore(k.delayed, busy["late"].id) is not None
    assert sched.client.zscore(k.running, busy["a"].id) is not None
    assert sched.client.zscore(k.failed, busy["group"].ids[1]) is not None
    assert sched.client.zscore(k.procs, pid) is not None
    assert sched.client.zscore(k.idle_rank(busy["p"].kind, "default"), pid) is not None
    assert ops.text(sched.client.hget(k.queue_kinds("default"), busy["p"].kind)) == "1"
    assert sched.client.sismember(k.idle, pid)


def test_fixed_keys_are_the_keys_every_call_gets(sched):
    assert sched.keys.fixed == tuple(getattr(sched.keys, name) for name in FIXED)
    assert ops.counts(sched.ns, None).keys == sched.keys.fixed


def test_every_key_of_the_namespace_has_the_prefix_and_hash_tag(sched, busy, namespace):
    made = ops.text(list(sched.client.scan_iter(match=sched.keys.prefix + "*")))
    tag = "{" + namespace + "}"

    assert len(made) >= 18
    for key in made:
        assert key.startswith(sched.keys.prefix), key
        assert tag in key, key
        assert key.startswith(f"luasched:{tag}:"), key


def test_no_key_escapes_the_namespace(sched, busy, namespace):
    """Keys of this test's server that mention the namespace all carry its prefix."""
    stray = [key for key in ops.text(list(sched.client.scan_iter(match=f"*{namespace}*")))
             if not key.startswith(sched.keys.prefix)]
    assert stray == []


@pytest.mark.parametrize(("name", "spelled"), [
    ("task", "t:ID"), ("task_wake", "w:ID"), ("queue", "q:ID"), ("queue_kinds", "qk:ID"),
    ("processor", "p:ID"), ("inbox", "p:ID:i"), ("inbox_running", "p:ID:r"),
    ("processor_wake", "p:ID:w"), ("group", "g:ID"), ("group_stream", "gs:ID"), ("lanes", "lanes:ID"),
    ("lane", "ln:ID"), ("task_children", "tc:ID"), ("group_children", "gc:ID"),
])
def test_key_spelling_matches_the_lib_header(name, spelled):
    keys = Keys("ns1")
    assert getattr(keys, name)("ID") == "luasched:{ns1}:" + spelled


def test_the_idle_ranking_of_a_queue_and_kind_is_spelled_as_lib_processors_builds_it():
    assert Keys("ns1").idle_rank("0f1e", "a:b") == "luasched:{ns1}:ik:0f1e:a:b"
    lua = (lua_dir() / "lib" / "processors.lua").read_text()
    assert "return P .. 'ik:' .. k .. ':' .. q" in lua


def test_cards_is_a_fixed_key_and_no_script_builds_it():
    assert Keys("ns1").cards == "luasched:{ns1}:cards" == Keys("ns1").fixed[8]
    lua = [p.read_text() for p in lua_dir().rglob("*.lua")]
    assert not [text for text in lua if "'cards'" in text or '"cards"' in text]
    assert any("C.cards" in text for text in lua)


def test_the_context_names_the_fixed_keys_in_keys_py_order(sched):
    """lib/util's context(KEYS, prefix) gives each fixed key its name (the loader's CONTEXT
    starts with FIXED), then the prefix, now, keep_s and what lib/metrics gathers in the call."""
    assert scripts.CONTEXT == (*FIXED, "prefix", "now", "keep_s", "observed")
    names = ", ".join(f"C.{n}" for n in scripts.CONTEXT)
    lua = ("--[[ t: x\n  Includes: util\n]]\n"
           f"local C = context(KEYS, ARGV[1])\nC.now, C.keep_s, C.observed = 5, 6, 7\nreturn {{{names}}}\n")
    keys = sched.keys.fixed
    got = sched.client.eval(scripts.build(lua, "lua/t.lua"), len(keys), *keys, sched.keys.prefix)
    assert ops.text(got) == [*keys, sched.keys.prefix, 5, 6, 7]


def test_fixed_key_spelling():
    assert Keys("ns1").fixed == tuple(f"luasched:{{ns1}}:{n}" for n in
                                      ("stats", "delayed", "running", "failed", "queues", "procs",
                                       "idle", "wake", "cards"))


def test_a_task_id_cannot_collide_with_another_tasks_keys(sched):
    @sched.task
    def echo(v):
        return v

    p = sched.processor(capacity=2)
    assert p.register()
    try:
        other = sched.submit(echo, 1, _id="x:w")
    except ValueError:
        return  # refusing such ids at the call is a fix too
    x = sched.submit(echo, 2, _id="x")
    sched.call(ops.result(sched.ns, "x", mark=True))  # someone waits for x
    assert len(sched.dispatch()) == 2

    assert p.process_available() == 2  # raised ScriptError: ack: WRONGTYPE ...

    assert (x.result(timeout=1), other.result(timeout=1)) == (2, 1)
    audit_ok(sched)


def test_a_task_id_that_spells_a_waiter_key_is_a_new_task(sched):
    p = sched.processor()
    assert p.register()
    x = sched.submit("echo", _id="y")
    sched.call(ops.result(sched.ns, "y", mark=True))
    sched.dispatch()
    ack(sched, p.id, start(sched, p.id).task, "done", "1")  # pushes the token to t:y:w
    try:
        late = sched.submit("echo", _id="y:w")
    except ValueError:
        return  # refusing such ids at the call is a fix too

    assert late.state == "queued"  # raised ScriptError: WRONGTYPE (the id was 'existing')
    assert sched.counts()["submitted"] == 2
    assert x.state == "done"


# --- record field names (luasched/core/fields.py) ----------------------------------------------


def test_no_stored_name_means_two_things():
    """A stored name is one attribute wherever it appears: ``done`` of the stats and of a group
    are the same logical name; ``n`` as a task's attempts and a group's total would not be."""
    meanings: dict[str, set[str]] = {}
    for kind in fields.LUA_KINDS.values():
        stored = fields.names(kind)
        assert len(set(stored.values())) == len(stored), kind  # no two attributes of a kind share one
        for attr, name in stored.items():
            meanings.setdefault(name, set()).add(attr)
    assert {name: attrs for name, attrs in meanings.items() if len(attrs) > 1} == {}


def test_a_memo_prefix_is_the_start_of_no_other_field():
    names = fields.names(fields.PROCESSOR)
    for attr in fields.Processor.PREFIXES:
        prefix = names[attr]
        others = [n for a, n in names.items() if a != attr and (n.startswith(prefix) or prefix.startswith(n))]
        assert others == [], attr


def test_the_renamed_fields_no_longer_collide():
    assert (fields.PROCESSOR.name, fields.GROUP.total) == ("name", "total")
    assert fields.PROCESSOR.ack_memo not in ("m", fields.TASK.max_attempts)
    assert fields.PROCESSOR.start_memo not in ("b", fields.TASK.backoff_ms)


def test_the_task_record_keeps_its_short_names():
    """Every queued task has a record: its field names are part of the measured bytes per task."""
    assert all(len(name) <= 2 for name in fields.names(fields.TASK).values())
    assert (fields.TASK.state, fields.TASK.attempts, fields.TASK.max_attempts) == ("s", "n", "m")


@pytest.mark.parametrize("kind", [fields.STATS, fields.RATE, fields.GROUP], ids=type)
def test_counters_by_final_state_are_named_by_the_state(kind):
    """finish() adds one to the field named by the task's state (HINCRBY key state 1)."""
    assert {getattr(kind, str(state)) for state in FINISHED} == {str(state) for state in FINISHED}


def test_lua_constants_follow_the_scheme():
    constants = fields.lua_constants()
    assert constants["TASK_STATE"] == fields.TASK.state
    assert constants["PROC_CAPACITY"] == fields.PROCESSOR.capacity
    assert constants["GROUP_TOTAL"] == fields.GROUP.total
    assert constants["STAT_SUBMITTED"] == fields.STATS.submitted
    assert constants["EVENT_TASK"] == fields.GROUP_EVENT.task
    assert len(constants) == sum(len(fields.names(k)) for k in fields.LUA_KINDS.values())


def stored(sched, key) -> set[str]:
    return set(ops.text(list(sched.client.hgetall(key))))


def test_every_stored_field_is_in_the_table(sched, busy):
    """What the scripts wrote is spelled as the table says (and nothing else is stored)."""
    k, pid, gid = sched.keys, busy["p"].id, busy["group"].id
    table = {kind: set(fields.names(kind).values()) for kind in fields.LUA_KINDS.values()}
    tasks = [busy[n].id for n in ("a", "b", "c", "late")] + list(busy["group"].ids)
    assert set().union(*(stored(sched, k.task(t)) for t in tasks)) <= table[fields.TASK]
    assert stored(sched, k.stats) <= table[fields.STATS]
    assert stored(sched, k.group(gid)) == table[fields.GROUP] - {fields.GROUP.cancelled, fields.GROUP.children}
    buckets = ops.text(list(sched.client.scan_iter(k.rate(0)[:-1] + "*")))
    rates = set().union(*(stored(sched, key) for key in buckets))
    assert rates and rates <= table[fields.RATE]
    events = sched.client.xrange(k.group_stream(gid))
    assert events and all({ops.text(f) for f in entry} == table[fields.GROUP_EVENT] for _, entry in events)
    proc = stored(sched, k.processor(pid))
    memos = {f for f in proc if f.startswith((fields.PROCESSOR.ack_memo, fields.PROCESSOR.start_memo))}
    assert memos and proc - memos <= table[fields.PROCESSOR]
