"""ops.py without Redis: call shapes against the script headers, decoders, and check_audit."""

from __future__ import annotations

import copy
import json
import re

import pytest

import luasched
from luasched import scripts
from luasched.core import explain, fields, flows, metrics, ops, pauses, policies, records, schedules
from luasched.core.audit import MAX_PROBLEMS, check_audit
from luasched.core.checks import requires_text
from luasched.core.fields import PROCESSOR, STATS, TASK
from luasched.core.keys import Keys
from luasched.core.kinds import describe_requires
from luasched.core.options import MAX_LIMIT, TaskOptions, policy_field
from luasched.core.replies import Ended, Lapsed, Overdue, Paused

NS = ops.Namespace(Keys("unit"), keep_s=77)
P = NS.prefix
STARTED = ops.Started("t1", "add", "[1]", 2, 500)
SPEC = schedules.make_spec("s1", "add", "[1]", TaskOptions(), None, 60, "UTC", "skip", 0)


def argv_names(script: str) -> dict[int, str]:
    """ARGV[i] -> its first word, as the script's header documents it."""
    text = (scripts.lua_dir() / f"{script}.lua").read_text(encoding="utf-8")
    head = text[:text.index("]]")]
    return {int(n): name for n, name in re.findall(r"ARGV\[(\d+)\]\s+([A-Za-z_]+)", head)}


# builder call -> expected ARGV (every value a str), in the order its header documents
CALLS = {
    "dispatch": (ops.dispatch(NS, 123, 7, "r1"), (P, "123", "7", "r1", "77")),
    "reap": (ops.reap(NS, 123, 9, "r1"), (P, "123", "9", "77", "r1")),
    "register": (ops.register(NS, 123, "p1", 4, 5000, ["a", "b"], "box", 0, ("k1", "{}")),
                 (P, "123", "p1", "4", "5000", "a,b", "box", "0", "k1", "{}")),
    "relabel": (ops.relabel(NS, 123, "p1", ("k1", "{}")), (P, "123", "p1", "k1", "{}")),
    "heartbeat": (ops.heartbeat(NS, 123, "p1"), (P, "123", "p1")),
    "deregister": (ops.deregister(NS, 123, "p1", "r1"), (P, "123", "p1", "77", "r1")),
    "start": (ops.start(NS, 123, "p1", "s0", "r1"), (P, "123", "p1", "s0", "r1", "1", "77")),
    "ack": (ops.ack(NS, 123, "p1", "s0", "r1", STARTED, "done", "42", ops.NEXT_INBOX),
            (P, "123", "p1", "s0", "r1", "77", "inbox", "1", "1", "t1", "2", "done", "42")),
    "cancel": (ops.cancel(NS, 123, "t1", "r1"), (P, "123", "t1", "r1", "77")),
    "result": (ops.result(NS, "t1", True), (P, "t1", "1")),
    "counts": (ops.counts(NS, 123), (P, "123")),
    "metrics": (metrics.metrics(NS, 123), (P, "123")),
    "audit": (ops.audit(NS, 123), (P, "123")),
    "audit_slice": (ops.audit_slice(NS, "queue", "q1", 2000, 1000), (P, "queue", "q1", "2000", "1000")),
    "retry_failed": (ops.retry_failed(NS, 123, [], 5, "r1"), (P, "123", "5", "r1")),
    "purge_finished": (ops.purge_finished(NS, 123, 60000, 4, 1000, "r1"), (P, "123", "60000", "4", "1000", "r1")),
    "processors": (ops.processors(NS, 123, 50), (P, "123", "50")),
    "pause": (pauses.pause(NS, 123, "pause", "q1", "k1"), (P, "123", "pause", "q1", "k1")),
    "policy": (policies.limit(NS, 123, policies.Limiter("api", 5, 2, 3, 4)),
               (P, "123", "limit", "api", "5.0", "2000", "3", "4")),
    "limits": (policies.limits(NS, 123), (P, "123")),
    "explain": (explain.explain(NS, 123, "t1", 50), (P, "123", "t1", "50")),
    "schedule": (schedules.upsert(NS, 123, "r1", SPEC, 60000, []),
                 (P, "123", "r1", "upsert", "s1", "add", "[1]", "default", "3", "0", "1000", "", "0", "every 60s", "",
                  "60000", "UTC", "skip", "0", "60000", "")),
    "fire": (schedules.fire(NS, 123, 50, "r1"), (P, "123", "50", "r1", "", "", str(schedules.LATE_GRACE_MS))),
    "schedules": (schedules.listing(NS, 50), (P, "50", "")),
}

# what the header calls each position (its first word), for the same scripts
HEADER_WORDS = {
    "dispatch": ["prefix", "now_ms", "limit", "request", "keep_s"],
    "reap": ["prefix", "now_ms", "limit", "keep_s", "request"],
    "register": ["prefix", "now_ms", "processor", "capacity", "lease_ms", "queues", "name", "default", "kind",
                 "the"],
    "relabel": ["prefix", "now_ms", "processor", "kind", "the"],
    "heartbeat": ["prefix", "now_ms", "processor"],
    "deregister": ["prefix", "now_ms", "processor", "keep_s", "request"],
    "start": ["prefix", "now_ms", "processor", "slot", "request", "want", "keep_s"],
    "ack": ["prefix", "now_ms", "processor", "slot", "request", "keep_s", "next", "want", "count"],
    "cancel": ["prefix", "now_ms", "task", "request", "keep_s"],
    "result": ["prefix", "task", "mark"],
    "counts": ["prefix", "now_ms"],
    "metrics": ["prefix", "now_ms"],
    "audit": ["prefix", "now_ms"],
    "audit_slice": ["prefix", "place", "the", "start", "count"],  # ARGV[3]: "the queue's name (...) or the lane's"
    "retry_failed": ["prefix", "now_ms", "limit", "request"],
    "purge_finished": ["prefix", "now_ms", "older_than_ms", "start", "limit", "request"],
    "processors": ["prefix", "now_ms", "limit"],
    "pause": ["prefix", "now_ms", "action", "scope", "key"],
    "policy": ["prefix", "now_ms", "op"],
    "limits": ["prefix", "now_ms"],
    "explain": ["prefix", "now_ms", "task", "limit"],
    "schedule": ["prefix", "now_ms", "request", "op", "the", "task", "args", "queue", "max_attempts", "timeout_ms",
                 "backoff_ms", "policy", "expires_ms", "spec", "cron", "every_ms", "tz", "overlap", "catchup_ms",
                 "next_ms", "times"],
    "fire": ["prefix", "now_ms", "limit", "request", "name", "task", "grace_ms"],
    "schedules": ["prefix", "limit", "name"],
}


def test_every_script_has_a_shape_test():
    assert sorted(CALLS) + ["submit"] == sorted(scripts.NAMES)


@pytest.mark.parametrize("script", sorted(CALLS))
def test_call_shape(script):
    call, argv = CALLS[script]
    assert call.script == script
    assert call.keys == NS.keys.fixed
    assert call.args == argv
    assert all(isinstance(a, str) for a in call.args)


#: Scripts whose ARGV goes on past its documented fixed part (the acked tasks of an ack, the
#: arguments of a policy's op).
FIXED_ARGV = {"ack": 9, "policy": 3}


@pytest.mark.parametrize("script", sorted(CALLS))
def test_argv_order_matches_the_header(script):
    call, _ = CALLS[script]
    documented = argv_names(script)
    assert sorted(documented) == list(range(1, FIXED_ARGV.get(script, len(call.args)) + 1))
    assert [documented[i] for i in sorted(documented)] == HEADER_WORDS[script]


@pytest.mark.parametrize("build", [
    lambda now: ops.dispatch(NS, now, 1, "r"), lambda now: ops.reap(NS, now, 1, "r"),
    lambda now: ops.heartbeat(NS, now, "p"), lambda now: ops.counts(NS, now),
    lambda now: ops.cancel(NS, now, "t", "r"), lambda now: ops.start(NS, now, "p", "s", "r"),
])
def test_no_time_means_server_time(build):
    assert build(None).args[1] == ""
    assert build(1_700_000_000_123.9).args[1] == "1700000000123"


def task(i, **options):
    return ops.NewTask(f"id{i}", "add", f"[{i}]", TaskOptions(**options), delay_s=0.0)


def test_submit_shape():
    new = ops.NewTask("id1", "add", "[1]", TaskOptions("q1", 5, 2.5, 0.25, 0, "tenant 1", ("a:1", "b"), 90),
                      delay_s=3, deps="run\n1\nt:p1", trace='{"traceparent":"00-ab-cd-01"}')
    (call,) = ops.submit(NS, 123, [new], dispatch=True, group="g1")

    assert call.script == "submit"
    assert call.keys == NS.keys.fixed
    assert call.args == (P, "123", "1", "g1", "1", "77", "id1", "add", "q1", "[1]", "5", "2500", "250", "3000",
                         "0\na:1,b\n\ntenant 1", "90000", "run\n1\nt:p1", '{"traceparent":"00-ab-cd-01"}')
    words = argv_names("submit")
    assert [words[i] for i in sorted(words)] == ["prefix", "now_ms", "dispatch", "group", "count", "keep_s"]
    assert f"then {ops.PER_TASK} per task" in (scripts.lua_dir() / "submit.lua").read_text(encoding="utf-8")


def test_submit_sends_unique_keys_after_the_tasks():
    plain = task(1)
    held = ops.NewTask("id2", "add", "[2]", TaskOptions(unique_until="started"), 10.0, "k 2", 10.0)
    (call,) = ops.submit(NS, 1, [plain, held])
    assert len(call.args) == 6 + 2 * ops.PER_TASK + ops.UNIQUE_VALUES
    assert call.args[-ops.UNIQUE_VALUES:] == ("2", "k 2", "started", "10000")
    (alone,) = ops.submit(NS, 1, [plain])
    assert len(alone.args) == 6 + ops.PER_TASK  # a submit without a key sends what it always did
    assert f"then {ops.UNIQUE_VALUES} per task that has a unique key" in " ".join(
        (scripts.lua_dir() / "submit.lua").read_text(encoding="utf-8").split())


def test_decode_submit_reads_the_submits_that_collapsed():
    got = ops.decode_submit([[1, [], [], ["a", "h1", "unique", "b", "h1", "debounced"]], [0, [], []]])
    assert got.merged == {"a": ("h1", "unique"), "b": ("h1", "debounced")}
    assert got.created == 1


REQ_THREE = '[["gpu","==","a100"],["ssd","exists",null],["vram_gb",">=",40]]'


def test_submit_sends_requires_in_the_policy():
    gpu = requires_text({"vram_gb": (">=", 40), "gpu": "a100", "ssd": True})
    assert gpu == REQ_THREE
    new = ops.NewTask("id1", "add", "[1]", TaskOptions(requires=gpu, key="k\nx"), delay_s=0)
    (call,) = ops.submit(NS, 1, [new])
    assert call.args[-4:] == (f"5\n\n{REQ_THREE}\nk\nx", "0", "", "")


REQ = '[["gpu","==","a100"]]'


@pytest.mark.parametrize(("options", "field"), [
    ({}, ""),
    ({"requires": ""}, ""),
    ({"priority": 0}, "0\n\n\n"),
    ({"key": "acme"}, "5\n\n\nacme"),
    ({"limits": ("a", "b")}, "5\na,b\n\n"),
    ({"requires": REQ}, f"5\n\n{REQ}\n"),
    ({"priority": 9, "limits": ("crm",), "requires": REQ, "key": "a\nb c"}, f"9\ncrm\n{REQ}\na\nb c"),
    ({"requires": requires_text({"zone": ("!=", 'zürich "1"')})}, '5\n\n[["zone","!=","zürich \\"1\\""]]\n'),
])
def test_policy_field(options, field):
    """'' for the defaults, else four lines: priority, limits, requires, key (last: it may hold
    anything); the pattern lua/submit.lua reads it with splits it back."""
    o = TaskOptions(**options)
    assert policy_field(o) == field
    if field:
        m = re.fullmatch(r"(\d)\n([^\n]*)\n([^\n]*)\n(.*)", field, re.S)
        assert m is not None
        assert m.groups() == (str(o.priority), ",".join(o.limits), o.requires, o.key or "")


def test_task_options_keep_requires_encoded():
    o = TaskOptions(requires=REQ)
    assert hash(o) == hash(TaskOptions(requires=REQ)) and o.replace(requires=None) == o
    assert o.replace(requires="").requires == ""
    with pytest.raises(TypeError, match="encoded text"):
        TaskOptions(requires={"gpu": "a100"})  # type: ignore[arg-type]
    for bad in ('[["gpu", "==", "a100"]]', "gpu=a100", "[1]", '[["gpu","~","a100"]]'):
        with pytest.raises(ValueError, match="requires_text"):
            TaskOptions(requires=bad)


def test_a_task_record_decodes_its_requires():
    """The record's ``rq`` (what lua/submit.lua stores from the policy) as conditions; none: ()."""
    stored = {TASK.name: "add", TASK.state: "queued", TASK.requires: REQ_THREE}
    found = records.decode_record({k.encode(): v.encode() for k, v in stored.items()}, "t1")
    assert found is not None
    assert found.requires == (("gpu", "==", "a100"), ("ssd", "exists", None), ("vram_gb", ">=", 40))
    assert describe_requires(found.requires) == "gpu == a100, ssd present, vram_gb >= 40"
    assert json.loads(json.dumps(found.as_json()))["requires"] == json.loads(REQ_THREE)
    flat = [b"f", b"add", b"s", b"queued"]  # a RESP2 reply, with no requires
    plain = records.decode_record(flat, "t2")
    assert plain is not None and plain.requires == () and plain.as_json()["requires"] == []
    assert TASK.requires == "rq" and fields.lua_constants()["TASK_REQUIRES"] == "rq"


def test_submit_defaults():
    (call,) = ops.submit(NS, None, [task(1)])
    assert call.args == (P, "", "0", "", "1", "77",
                         "id1", "add", "default", "[1]", "3", "0", "1000", "0", "", "0", "", "")


@pytest.mark.parametrize(("n", "chunks"), [(1, [1]), (999, [999]), (1000, [1000]), (1001, [1000, 1]),
                                           (2500, [1000, 1000, 500])])
def test_submit_chunks(n, chunks):
    calls = ops.submit(NS, 1, [task(i) for i in range(n)])

    assert [int(c.args[4]) for c in calls] == chunks
    assert [len(c.args) for c in calls] == [6 + ops.PER_TASK * k for k in chunks]
    ids = [a for c in calls for a in c.args[6::ops.PER_TASK]]
    assert ids == [f"id{i}" for i in range(n)]


def test_ack_refuses_an_unknown_outcome():
    with pytest.raises(ValueError, match="outcome"):
        ops.ack(NS, 1, "p", "s", "r", STARTED, "maybe", "", ops.NEXT_NONE)


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, "5", 1.0, True, None])
def test_limit_checked_in_the_builders(limit):
    with pytest.raises((TypeError, ValueError), match="limit"):
        ops.dispatch(NS, 1, limit, "r")
    with pytest.raises((TypeError, ValueError), match="limit"):
        ops.reap(NS, 1, limit, "r")


# --- decoders: bytes and str replies decode alike ---------------------------------------------


def as_bytes(value):
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return [as_bytes(v) for v in value]
    return value


DECODERS = [
    ("submit", lambda r: ops.decode_submit([r]), [2, ["old"], ["t1", "p1", "t2", "p1"]]),
    ("submit merged", lambda r: ops.decode_submit([r]), [1, [], [], ["t2", "t1", "unique"]]),
    ("dispatch", ops.decode_dispatch, [["t1", "p1"], "1000", "2000", "3000.0", "", "2"]),
    ("dispatch, no promoted", ops.decode_dispatch, [["t1", "p1"], "1000", "2000", "3000.0", ""]),
    ("reap", ops.decode_reap, [["t1", "t2", "t3"], ["p1"], "1", ["2", "1"], ["t3", "p2", "5000", "retry", "3000"]]),
    ("reap, no details", ops.decode_reap, [["t1", "t2"], ["p1"], "1"]),
    ("register ok", ops.decode_register, ["ok", "5000"]),
    ("register lost", ops.decode_register, ["lost"]),
    ("heartbeat", ops.decode_heartbeat, ["ok", 3, "5000"]),
    ("deregister", ops.decode_deregister, ["ok", ["t1"]]),
    ("deregister unknown", ops.decode_deregister, ["unknown"]),
    ("start task", ops.decode_start, ["task", "t1", "add", "[1]", "1", "0"]),
    ("start empty", ops.decode_start, ["empty"]),
    ("ack next", ops.decode_ack, [["done"], ["task", "t2", "add", "[]", "1", "500"], [], 0]),
    ("ack", ops.decode_ack, [["stale"], [], [], 0]),
    ("ack many", ops.decode_ack, [["done", "retry"], ["task", "t2", "add", "[]", "1", "500",
                                                      "task", "t3", "add", "[]", "2", "0"], [], 0]),
    ("ack placed", ops.decode_ack, [["done"], [], ["t2", "p1", "t3", "p2"], 1]),
    ("ack ended", ops.decode_ack, [["retry", "failed", "done"], [], [], 0, ["t1", "500", "3", "t2", "", "3"]]),
    ("cancel", lambda r: ops.decode_cancel(r, "t1"), ["cancelled"]),
    ("cancel refused", lambda r: ops.decode_cancel(r, "t1"), ["not_cancellable", "running"]),
    ("result done", lambda r: ops.decode_result(r, "t1"), ["done", "42", "p1"]),
    ("result queued", lambda r: ops.decode_result(r, "t1"), ["queued"]),
    ("counts", ops.decode_counts, [["submitted", 3, "queued", 1], ["default", 1]]),
    ("outcomes", lambda r: ops.decode_outcomes(r, ["t1", "t2"]),
     [["done", "1", None, "p1"], [None, None, None, None]]),
]


@pytest.mark.parametrize(("decode", "reply"), [pytest.param(d, r, id=i) for i, d, r in DECODERS])
def test_decoders_read_bytes_and_str_alike(decode, reply):
    from_str = decode(copy.deepcopy(reply))
    from_bytes = decode(as_bytes(reply))
    assert from_str == from_bytes
    assert "b'" not in repr(from_bytes)


def test_decoded_values():
    assert ops.decode_submit([[2, ["old"], ["t1", "p1"]], [1, [], []]]) == ops.SubmitReply(3, ["old"],
                                                                                           [("t1", "p1")])
    d = ops.decode_dispatch([["t1", "p1"], "1000", "2000", "3000", ""])
    assert (d.assignments, d.now_ms, d.next_due_ms, d.next_lease_ms, d.next_deadline_ms) == (
        [("t1", "p1")], 1000, 2000, 3000, None)
    assert ops.decode_start([b"task", b"t1", b"add", b"[1]", b"2", b"500"]).task == ops.Started(
        "t1", "add", "[1]", 2, 500)
    placing = ops.decode_ack([[b"done"], [], [b"t2", b"p1", b"t3", b"p2"], 1])
    assert (placing.placed, placing.more) == ([("t2", "p1"), ("t3", "p2")], True)
    assert ops.decode_ack([[b"done"], [], [], 0]).more is False
    assert ops.decode_deregister(["unknown"]) is None
    with pytest.raises(luasched.TaskNotFound):
        ops.decode_cancel([b"unknown"], "t9")
    assert ops.decode_cancel([b"not_cancellable", b"done"], "t1") is False


@pytest.mark.parametrize(("reply", "quiet"), [
    ([["done"], [], [], 0, ["t1", "", "1"]], False),
    ([["done"], [], [], "1", ["t1", "", "1"]], True),  # a backlog waits
    ([["done"], [], ["t2", "p1"], 1], True),  # placements: nothing the slot acts on
    ([["done", "stale"], [], [], 0], None),  # a stale attempt: its line is logged
    ([["done"], ["task", "t2", "add", "[]", "1", "0"], [], 0], None),  # a task started
])
def test_ack_quiet_is_more_unless_the_ack_says_something_else(reply, quiet):
    for form in (copy.deepcopy(reply), as_bytes(reply)):
        assert ops.ack_quiet(form) is quiet
        if quiet is not None:  # what decode_ack reads of it
            decoded = ops.decode_ack(form)
            assert (decoded.started, decoded.more, "stale" in decoded.statuses) == ([], quiet, False)


@pytest.mark.parametrize(("reply", "ids", "processors", "more", "truthy"), [
    ([[], [], "0"], [], [], False, False),
    ([["t1"], [], "0"], ["t1"], [], False, True),
    ([[], ["p1"], "0"], [], ["p1"], False, True),  # a lapsed processor with an empty inbox
    ([[], [], "1"], [], [], True, True),
])
def test_decode_reap(reply, ids, processors, more, truthy):
    got = ops.decode_reap(as_bytes(reply))
    assert list(got) == ids
    assert (got.processors, got.more, bool(got)) == (processors, more, truthy)


def test_decode_reap_details():
    """What each lapsed processor gave back (its share of the ids, in order) and each overdue task."""
    got = ops.decode_reap(as_bytes([["a1", "a2", "b1", "t1", "t2"], ["pa", "pb", "pc"], "0",
                                    ["2", "0", "1", "1", "0", "0"],
                                    ["t1", "px", "5000", "retry", "3000", "t2", "py", "1000", "failed", ""]]))
    assert got.lapsed == [Lapsed("pa", ["a1", "a2"], 0), Lapsed("pb", ["b1"], 1), Lapsed("pc", [], 0)]
    assert got.overdue == [Overdue("t1", "px", 5000, 3000), Overdue("t2", "py", 1000, None)]
    old = ops.decode_reap([["a1"], ["pa"], "0"])  # a reply of the first three entries alone
    assert (list(old), old.processors, old.lapsed, old.overdue) == (["a1"], ["pa"], [], [])


def test_decode_ack_says_how_attempts_ended():
    got = ops.decode_ack(as_bytes([["retry", "failed", "done", "stale"], [], [], 0,
                                   ["t1", "500", "3", "t2", "", "5"]]))
    assert got.ended == {"t1": Ended(500, 3), "t2": Ended(None, 5)}
    assert ops.decode_ack([["done"], [], [], 0]).ended == {}  # a reply without the entry


def test_decode_dispatch_promoted():
    assert ops.decode_dispatch([[], "1000", "", "", "", "4"]).promoted == 4
    assert ops.decode_dispatch([[], "1000", "", "", ""]).promoted == 0


def test_group_reader_times_out_and_slices_its_waits():
    reader = flows.GroupReader(NS, "g", ["t1"], timeout=10, slice_s=0.5)
    request = reader.request()
    assert request.name == "xread"
    assert request.args[0] == {NS.keys.group_stream("g"): "0-0"}
    assert 0 < request.args[2] <= 500  # block ms: one slice at most
    expired = flows.GroupReader(NS, "g", ["t1"], timeout=0, slice_s=0.5)
    with pytest.raises(luasched.ResultTimeout, match="1 of 1"):
        expired.request()


def test_wait_result_slices_its_waits():
    flow = flows.wait_result(NS, "t1", None, 0.75)
    first = next(flow)
    assert first == ops.result(NS, "t1", True)
    block = flow.send(["running"])
    assert block == ops.Command("blpop", ([NS.keys.task_wake("t1")], 0.75))
    assert flow.send(None) == ops.result(NS, "t1", True)  # nothing came: look again
    with pytest.raises(StopIteration) as done:
        flow.send([b"done", b"7", b"p1"])
    assert done.value.value == ops.Outcome("t1", "done", "7", "p1")


def test_decode_audit_bytes_and_str_alike():
    frame, slices = clean()
    as_read = [(place, queue, as_bytes(rows)) for place, queue, rows in slices]
    assert check_audit(as_bytes(frame), as_read) == check_audit(frame, slices)


def test_group_reader_feeds_bytes_and_str_alike():
    def reader():
        return flows.GroupReader(NS, "g", ["t1", "t2"], timeout=None, slice_s=1.0)

    reply = [["stream", [["1-0", ["t", "t2", "s", "done"]], ["2-0", ["t", "other", "s", "done"]]]]]
    a, b = reader(), reader()
    assert a.feed(reply) == b.feed(as_bytes(reply)) == [("t2", "done")]
    assert not a.done
    assert a.feed([["stream", [["3-0", {"t": "t1", "s": "failed"}]]]]) == [("t1", "failed")]
    assert a.done


@pytest.mark.parametrize(("reply", "wait", "reap_now"), [
    (ops.DispatchReply([], 1000, None, None, None), 1.0, False),
    (ops.DispatchReply([], 1000, 1500, None, None), 0.5, False),
    (ops.DispatchReply([], 1000, 900, None, None), 0.001, False),
    (ops.DispatchReply([], 1000, None, 800, None), 0.25, True),
    (ops.DispatchReply([], 1000, None, 1600, 1400), 0.4, False),
])
def test_dispatch_reply_wait(reply, wait, reap_now):
    assert reply.wait_s(1.0, 0.25) == (pytest.approx(wait), reap_now)


@pytest.mark.parametrize(("outcome", "raises"), [
    (ops.Outcome("t", "done", "[1, 2]"), None),
    (ops.Outcome("t", "failed", '{"type": "E", "message": "m", "traceback": "tb"}'), luasched.TaskFailed),
    (ops.Outcome("t", "failed", "not json"), luasched.TaskFailed),
    (ops.Outcome("t", "cancelled"), luasched.TaskCancelled),
    (ops.Outcome("t", "unknown"), luasched.TaskNotFound),
    (ops.Outcome("t", "running"), luasched.ScriptError),
])
def test_outcome_value(outcome, raises):
    if raises is None:
        assert outcome.value() == [1, 2]
    else:
        with pytest.raises(raises):
            outcome.value()


# --- check_audit on hand-made snapshots -------------------------------------------------------

TWO40 = 1 << 40
#: The lane of a task of priority 5 and no key in queue default (lib/lanes), as audit rows name it.
LANE = "5:7:default"


def proc_record(capacity: str, deadline_ms: str | None = None) -> list[str]:
    """A processor's record as audit reads it (HGETALL, flat), serving the queue default, of kind k1."""
    flat = [PROCESSOR.capacity, capacity, PROCESSOR.queues, "default", PROCESSOR.kind, "k1"]
    return flat + [PROCESSOR.deadline_ms, deadline_ms] if deadline_ms else flat


def clean():
    """A consistent audit (frame, slices): t1 queued, t2 pending and t3 running on p1 (capacity
    3), t4 delayed, t5 failed, t6 waiting for t1, one done and one cancelled (no longer in any place)."""
    frame = [
        "1000",
        [STATS.submitted, "8", STATS.assigned, "1", STATS.done, "1", STATS.failed, "1", STATS.cancelled, "1",
         STATS.seq, "9"],
        [["default", 1]],
        1,
        ["t3", "inf"],
        1,
        [["p1", "5000", proc_record("3"), ["t2"], ["t3"]]],
        [["default", [["k1", ["p1", str(2 * TWO40 + 9)]]]]],  # the idle rankings, per queue and kind
        ["p1"],
        [["t2", "assigned", "default", "p1", "0", "3", LANE, ""],
         ["t3", "running", "default", "p1", "1", "3", LANE, ""]],
        [],  # cards: none (p1's record predates them, as it predates dl)
        [],  # pauses: none
        [],  # queues in lanes mode: none (lib/lanes)
        [],  # lanes blocked by a rate: none
        [],  # limiters' running counts: none
        [],  # limiters: none
        [],  # patterns: none
        ["default", "1"],  # qd: t4 is the delayed task of queue default
        ["default", 1],  # the delayed tasks' queues, counted by the frame
        [["t4", "9000", "delayed", "9000"]],  # the deadline index: t4 expires at 9000
        ["k1", '{"l":{"gpu":"a100"},"n":["add"]}'],  # kinds: p1's
        ["k1", "1"],  # kindn: p1
        [["default", ["k1", "1"], ["add"], 0]],  # qk:default: p1; qn:default; no routing flag
        [["k1", ["add"]]],  # kn:k1: the task names of its definition
        1,  # waiting: t6
    ]
    slices = [
        ["queue", "default", [["t1", "queued", "default", "", "0", "3", LANE, ""]]],
        ["delayed", "", [["t4", "delayed", "default", "", "1", "3", LANE, ""]]],
        ["failed", "", [["t5", "failed", "default", "", "3", "3", LANE, ""]]],
        ["waiting", "", [["t6", "waiting", "default", "", "0", "3", LANE, "", "1", "1"]]],  # 1 counted, 1 left
    ]
    return frame, slices


def test_a_clean_audit_passes():
    found = check_audit(*clean())
    assert found.ok, found.problems
    assert found.problems == []
    assert found.counts == {"submitted": 8, "waiting": 1, "queued": 1, "delayed": 1, "assigned": 1, "running": 1,
                            "done": 1, "failed": 1, "cancelled": 1, "purged": 0, "processors": 1,
                            "idle_processors": 1}
    assert bool(found) is True


def test_purged_tasks_count_as_accounted_for():
    """A purged dead letter is in no place: the purged counter keeps submitted's sum."""
    frame, slices = clean()
    frame[1] = [*frame[1], STATS.purged, "2"]
    frame[1][1] = "10"
    found = check_audit(frame, slices)
    assert found.ok, found.problems
    assert found.counts["purged"] == 2
    frame[1][1] = "11"
    assert any("11 tasks were submitted but 10 are accounted for" in p and "purged 2" in p
               for p in check_audit(frame, slices).problems)


def plant(change):
    frame, slices = clean()
    change(frame, slices)
    return frame, slices


def _queued_and_delayed(f, s):
    s[1][2].append(["t1", "queued", "default", "", "0", "3", LANE, ""])  # t1 also delayed
    f[3] = 2
    f[1][1] = "8"


def _pending_and_running(f, s):
    f[6][0][4].append("t2")  # t2 both pending and running on p1
    f[4] += ["t2", "inf"]
    f[1][1] = "8"


def _twice_in_a_slice(f, s):
    s[0][2].append(["t1", "queued", "default", "", "0", "3", LANE, ""])
    f[2] = [["default", 2]]
    f[1][1] = "8"


def _over_capacity(f, s):
    f[6][0][2] = proc_record("1")
    f[7] = [["default", []]]
    f[8] = []


def _idle_but_full(f, s):
    f[6][0][2] = proc_record("2")


def _not_ranked_idle(f, s):
    f[7] = [["default", []]]


def _rank_with_wrong_load(f, s):
    f[7] = [["default", [["k1", ["p1", str(1 * TWO40 + 9)]]]]]


def _idle_for_a_queue_not_served(f, s):
    f[7].append(["other", [["k1", ["p1", str(2 * TWO40 + 9)]]]])


def _idle_but_unregistered(f, s):
    f[8].append("ghost")


def _running_zset_only(f, s):
    f[4] += ["t9", "inf"]
    f[9].append(["t9", "running", "default", "p1", "1", "3", LANE, ""])
    f[1][1] = "8"


def _running_set_only(f, s):
    f[4] = []


def _no_processor_record(f, s):
    f[6][0][2] = []


def _missing_record(f, s):
    s[0][2][0] = ["t1", "", "", "", "", "", "", ""]


def _missing_record_held(f, s):
    f[9][0] = ["t2", "", "", "", "", "", "", ""]


def _lost_task(f, s):
    f[2] = [["default", 0]]
    s[0][2] = []


def _wrong_queue(f, s):
    s[0][2][0] = ["t1", "queued", "other", "", "0", "3", "5:5:other", ""]


def _too_many_attempts(f, s):
    f[9][1] = ["t3", "running", "default", "p1", "4", "3", LANE, ""]


def _too_many_attempts_failed(f, s):
    s[2][2][0] = ["t5", "failed", "default", "", "4", "3", LANE, ""]


def _lease_out_of_step(f, s):
    f[6][0][2] = proc_record("3", "4000")  # the registry says 5000


def _stuck_without_its_call(f, s):
    f[6][0][2] = proc_record("3") + [PROCESSOR.stuck, "1"]  # a stuck slot, but no reaped call noted


def _a_pause_of_nothing(f, s):
    f[11] = ["q:bad name", "5", "*", "soon"]


def _inbox_of_another(f, s):
    f[9][0] = ["t2", "assigned", "default", "p2", "0", "3", LANE, ""]


def _delayed_count_off(f, s):
    f[17] = ["default", "2"]


def _delayed_in_another_queue(f, s):
    f[17] = ["other", "1"]


RULES = [
    ("a deadline of a started task", lambda f, s: f[19].__setitem__(0, ["t4", "9000", "running", "9000"]),
     "task t4 is in the deadline index but is running"),
    ("a deadline out of step", lambda f, s: f[19].__setitem__(0, ["t4", "9000", "delayed", "8000"]),
     "task t4 is in the deadline index at 9000, its record says 8000"),
    ("delayed count off", _delayed_count_off, "the queues count 2 delayed tasks, the delayed set holds 1"),
    ("delayed counted in another queue", _delayed_in_another_queue,
     "queue default counts 0 delayed tasks, the delayed set holds 1"),
    ("an empty delayed count", lambda f, s: f[17].extend(["other", "0"]),
     "queue other counts 0 delayed tasks (a field"),
    ("wrong state", lambda f, s: s[0][2].__setitem__(0, ["t1", "delayed", "default", "", "0", "3", LANE, ""]),
     "is in queue default but its record says delayed"),
    ("delayed says queued", lambda f, s: s[1][2].__setitem__(0, ["t4", "queued", "default", "", "1", "3", LANE, ""]),
     "is in delayed but its record says queued"),
    ("running says assigned", lambda f, s: f[9].__setitem__(1, ["t3", "assigned", "default", "p1", "1", "3", LANE, ""]),
     "is in inbox p1 (running) but its record says assigned"),
    ("queued and delayed", _queued_and_delayed, "t1 is in delayed but its record says queued"),
    ("pending and running", _pending_and_running, "is in 2 places"),
    ("twice in one slice", _twice_in_a_slice, "t1 is in queue default twice"),
    ("over capacity", _over_capacity, "over its capacity 1"),
    ("idle but full", _idle_but_full, "is idle for default but full"),
    ("not ranked idle", _not_ranked_idle, "is not ranked idle for queue default"),
    ("wrong load in the rank", _rank_with_wrong_load, "is ranked with load 1"),
    ("idle for a queue it does not serve", _idle_for_a_queue_not_served, "does not serve it"),
    ("idle set of a stranger", _idle_but_unregistered, "ghost is in the idle set but not registered"),
    ("running zset without a processor", _running_zset_only, "in no processor's running set"),
    ("running set without the zset", _running_set_only, "missing from the running zset"),
    ("processor without record", _no_processor_record, "has no record"),
    ("task without record", _missing_record, "t1 is in queue default but has no record"),
    ("held task without record", _missing_record_held, "t2 is in inbox p1 (pending) but has no record"),
    ("assigned counter", lambda f, s: f[1].__setitem__(3, "2"), "counter assigned is 2"),
    ("failed counter", lambda f, s: f[1].__setitem__(7, "0"), "counter failed is 0"),
    ("submitted counter", lambda f, s: f[1].__setitem__(1, "9"), "9 tasks were submitted but 8"),
    ("a task lost", _lost_task, "8 tasks were submitted but 7"),
    ("a waiting count out of step", lambda f, s: s[3][2][0].__setitem__(8, "2"),
     "t6 counts 2 tasks and groups it waits for as not finished; 1 are not"),
    ("a waiting task not waiting", lambda f, s: s[3][2][0].__setitem__(1, "queued"),
     "t6 is in waiting but its record says queued"),
    ("queued in a queue not its own", _wrong_queue, "belongs to lane '5:5:other' of queue other"),
    ("attempts over max", _too_many_attempts, "used 4 attempts of 3"),
    ("attempts over max, failed", _too_many_attempts_failed, "t5 used 4 attempts of 3"),
    ("inbox of another processor", _inbox_of_another, "its record says assigned on p2"),
    ("a pause of no queue", _a_pause_of_nothing, "pause 'q:bad name' names neither the namespace nor a queue"),
    ("a pause without its time", _a_pause_of_nothing, "pause '*' has no time it began ('soon')"),
    ("stuck slot without its call", _stuck_without_its_call, "counts 1 stuck slot but holds 0 reaped calls"),
    ("lease in the record out of step", _lease_out_of_step, "lease ends at 4000, the registry 5000"),
    ("a kind counted twice", lambda f, s: f[21].__setitem__(1, "2"), "per kind (kindn) are {'k1': 2}"),
    ("a queue's kinds out of step", lambda f, s: f[22].append(["other", ["k1", "1"], [], 0]),
     "serving queue other per kind (qk) are {'k1': 1}, the records say {}"),
    ("a kind without its definition", lambda f, s: f.__setitem__(20, []), "of kind k1, which has no definition"),
    ("a definition of no processor", lambda f, s: f[20].extend(["k2", "{}"]), "k2 has a definition but no"),
    ("task names out of step", lambda f, s: f[23][0][1].append("ghost"),
     "kind k1's task names (kn) are ['add', 'ghost'], its definition says ['add']"),
    ("a routing flag out of step", lambda f, s: f[22][0].__setitem__(3, 1),
     "queue default's routing flag (qr) is 1, but its kinds ['k1'] have every task name"),
    ("no routing flag where a name is missing", lambda f, s: f[22][0][2].append("ghost"),
     "queue default's routing flag (qr) is 0, but its kinds ['k1'] lack every task name"),
    ("ranked under another kind", lambda f, s: f[7][0][1][0].__setitem__(0, "k2"),
     "p1 is ranked idle for queue default as kind k2, its record says k1"),
]


@pytest.mark.parametrize(("change", "says"), [pytest.param(c, w, id=i) for i, c, w in RULES])
def test_check_audit_detects(change, says):
    found = check_audit(*plant(change))

    assert not found.ok
    assert not bool(found)
    assert any(says in p for p in found.problems), found.problems


def test_a_lapsed_processor_is_not_required_to_be_ranked_idle():
    def lapse(f, s):
        f[6][0][1] = "999"  # deadline before now (1000)
        f[7] = [["default", []]]
        f[8] = []

    found = check_audit(*plant(lapse))
    assert found.ok, found.problems


def test_a_broken_namespace_reports_a_bounded_number_of_problems():
    frame, slices = clean()
    rows = [[f"x{i}", "", "", "", "", "", "", ""] for i in range(MAX_PROBLEMS + 5)]
    found = check_audit(frame, [*slices, ["queue", "default", rows]])
    assert len(found.problems) == MAX_PROBLEMS + 1
    assert found.problems[-1] == "... and 5 more problems"


def test_the_audit_flow_reads_every_place_in_slices():
    """flows.audit asks for the frame, then each big place in slices of slice_size until the
    place's size is read, and checks every slice."""
    frame, _ = clean()
    frame[2] = [["default", 5]]
    frame[1][1] = "12"
    queued = [[f"q{i}", "queued", "default", "", "0", "3", LANE, ""] for i in range(5)]
    flow = flows.audit(NS, 123, slice_size=2)
    asked = [next(flow)]
    reply = frame
    answers = {("queue", "default"): queued, ("delayed", ""): [["t4", "delayed", "default", "", "1", "3", LANE, ""]],
               ("failed", ""): [["t5", "failed", "default", "", "3", "3", LANE, ""]],
               ("waiting", ""): [["t6", "waiting", "default", "", "0", "3", LANE, "", "1", "1"]]}
    try:
        while True:
            request = flow.send(reply)
            asked.append(request)
            if isinstance(request, ops.Command):  # last: the size of the schedule index (then none)
                assert request == ops.Command("zcard", (NS.keys.schedules,))
                reply = 0
                continue
            _, place, queue, start, count = request.args
            rows = answers[(place, queue)]
            reply = [len(rows), rows[int(start):int(start) + int(count)]]
    except StopIteration as done:
        found = done.value
    assert found.ok, found.problems
    assert found.counts["queued"] == 5
    assert asked[0] == ops.audit(NS, 123)
    assert [(r.args[1], r.args[3]) for r in asked[1:-1]] == [
        ("queue", "0"), ("queue", "2"), ("queue", "4"), ("waiting", "0"), ("delayed", "0"), ("failed", "0")]
    assert asked[-1] == ops.Command("zcard", (NS.keys.schedules,))


def test_pauses_decode_namespace_first_and_refuse_bad_scopes():
    assert pauses.decode_paused([b"q:b", b"7", b"*", b"5", b"q:a", b"6"]) == [
        Paused(None, 5), Paused("a", 6), Paused("b", 7)]
    assert pauses.pause(NS, 1, "resume", None).args[-2:] == ("*", "")
    with pytest.raises(ValueError):
        pauses.pause(NS, 1, "pause", "bad name")
    with pytest.raises(ValueError):
        pauses.pause(NS, 1, "stop", None)
    frame, slices = clean()
    frame[11] = ["*", "5", "q:a", "6"]
    assert check_audit(frame, slices).ok


def test_retry_failed_names_its_ids_after_the_limit():
    call = ops.retry_failed(NS, None, ["t1", "t2"], 5, "r1")
    assert call.args == (P, "", "5", "r1", "t1", "t2")
    with pytest.raises(ValueError, match="more than limit"):
        ops.retry_failed(NS, None, ["t1", "t2"], 1, "r1")


def drive_purge(replies, limit=None, now_ms=None):
    """Run flows.purge_finished on canned replies; the calls it sent and what it returned."""
    rids = iter(f"r{i}" for i in range(100))
    flow = flows.purge_finished(NS, now_ms, 5000, limit, lambda: next(rids))
    sent = [next(flow)]
    try:
        for reply in replies:
            sent.append(flow.send(reply))
    except StopIteration as done:
        return sent, done.value
    raise AssertionError("the flow did not end on these replies")


def test_purge_flow_passes_over_what_was_kept_with_one_cutoff(monkeypatch):
    monkeypatch.setattr(flows, "PURGE_CHUNK", 3)
    sent, deleted = drive_purge([[2, 1, 0, 1, "9000"], [3, 0, 0, 1, "9000"], [1, 2, 1, 0, "9000"]])
    assert deleted == 6
    # ARGV: prefix, now_ms, older_than_ms, start, limit, request id
    assert [c.args[1:5] for c in sent] == [("", "5000", "0", "3"), ("9000", "5000", "1", "3"),
                                           ("9000", "5000", "1", "3")]
    assert len({c.args[5] for c in sent}) == 3  # a request id per call


def test_purge_flow_stops_at_its_limit_and_asks_no_more_than_is_left(monkeypatch):
    monkeypatch.setattr(flows, "PURGE_CHUNK", 3)
    sent, deleted = drive_purge([[3, 0, 0, 1, "7"], [1, 0, 0, 1, "7"]], limit=4, now_ms=7)
    assert deleted == 4
    assert [c.args[4] for c in sent] == ["3", "1"]


def test_purge_call_shape_refuses_bad_numbers():
    with pytest.raises(ValueError, match="older_than_ms"):
        ops.purge_finished(NS, None, -1, 0, 10, "r")
    with pytest.raises(ValueError, match="start"):
        ops.purge_finished(NS, None, 0, -1, 10, "r")
    with pytest.raises(ValueError, match="limit"):
        ops.purge_finished(NS, None, 0, 0, 10001, "r")
    assert ops.decode_purge_finished([1, 2, 3, 0, "99"]) == ops.PurgeChunk(1, 2, 3, False, 99)
