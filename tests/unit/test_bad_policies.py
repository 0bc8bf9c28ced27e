"""Bad placement input (a task's priority, key and limits; limiters, weights, a queue's aging,
pauses by key) raises at the call that gave it, naming what is wrong, and nothing is written.
On the embedded server and on a real one."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from tests.scripts.util import audit_ok


@pytest.fixture
def unchanged(sched):
    """After the test body: no key was written, the invariant holds."""
    keys_before = sorted(sched.client.scan_iter(match=sched.keys.prefix + "*"))
    yield
    assert sorted(sched.client.scan_iter(match=sched.keys.prefix + "*")) == keys_before
    audit_ok(sched)


LONG = "x" * 257
NAMES = ["a,b", "a b", "a\tb", "", "x" * 201, "a*b", "*a", "**"]

BAD_CALLS = [
    # a task's priority: an int from 0 to 9
    ("submit _priority 12", lambda s: s.submit("add", _priority=12), ValueError, "priority"),
    ("submit _priority -1", lambda s: s.submit("add", _priority=-1), ValueError, "priority"),
    ("submit _priority True", lambda s: s.submit("add", _priority=True), TypeError, "priority"),
    ("submit _priority 1.0", lambda s: s.submit("add", _priority=1.0), TypeError, "priority"),
    ("submit _priority '1'", lambda s: s.submit("add", _priority="1"), TypeError, "priority"),
    ("submit_many priority 10", lambda s: s.submit_many("add", [(1,)], priority=10), ValueError, "priority"),
    ("map priority 12", lambda s: s.map("add", [(1,)], priority=12), ValueError, "priority"),
    ("task priority 12", lambda s: s.task(priority=12), ValueError, "priority"),
    # a task's key: a non-empty str of at most 256 characters
    ("submit _key int", lambda s: s.submit("add", _key=5), TypeError, "key"),
    ("submit _key bytes", lambda s: s.submit("add", _key=b"k"), TypeError, "key"),
    ("submit _key empty", lambda s: s.submit("add", _key=""), ValueError, "key"),
    ("submit _key long", lambda s: s.submit("add", _key=LONG), ValueError, "key"),
    ("submit _key surrogate", lambda s: s.submit("add", _key="k\ud800"), ValueError, "UTF-8"),
    ("submit_many key int", lambda s: s.submit_many("add", [(1,)], key=5), TypeError, "key"),
    ("map key empty", lambda s: s.map("add", [(1,)], key=""), ValueError, "key"),
    ("task key int", lambda s: s.task(key=1), TypeError, "key"),
    # a task's limits: a tuple of concrete limiter names
    ("submit _limits str", lambda s: s.submit("add", _limits="user:1"), TypeError, "tuple"),
    ("submit _limits int", lambda s: s.submit("add", _limits=1), TypeError, "limits"),
    ("submit _limits of int", lambda s: s.submit("add", _limits=(1,)), TypeError, "limiter name"),
    ("submit _limits too many", lambda s: s.submit("add", _limits=[f"l{i}" for i in range(17)]), ValueError,
     "at most 16"),
    ("submit_many limits str", lambda s: s.submit_many("add", [(1,)], limits="ab"), TypeError, "tuple"),
    ("map limits pattern", lambda s: s.map("add", [(1,)], limits=("user:*",)), ValueError, "'*'"),
    ("task limits str", lambda s: s.task(limits="abc"), TypeError, "tuple"),
    *[(f"submit _limits {n!r}", lambda s, n=n: s.submit("add", _limits=("ok", n)), ValueError,
       "limiter name") for n in NAMES],
    # limiters
    *[(f"limit name {n!r}", lambda s, n=n: s.limit(n, max_running=1), ValueError, "limiter name")
      for n in NAMES],
    ("limit name int", lambda s: s.limit(5, max_running=1), TypeError, "limiter name"),
    ("limit limits nothing", lambda s: s.limit("a"), ValueError, "max_running"),
    ("limit rate 0", lambda s: s.limit("a", rate=0), ValueError, "rate"),
    ("limit rate -1", lambda s: s.limit("a", rate=-1), ValueError, "rate"),
    ("limit rate nan", lambda s: s.limit("a", rate=math.nan), ValueError, "rate"),
    ("limit rate inf", lambda s: s.limit("a", rate=math.inf), ValueError, "rate"),
    ("limit rate True", lambda s: s.limit("a", rate=True), TypeError, "rate"),
    ("limit rate '5'", lambda s: s.limit("a", rate="5"), TypeError, "rate"),
    ("limit per 0", lambda s: s.limit("a", rate=5, per=0), ValueError, "per"),
    ("limit per -1", lambda s: s.limit("a", rate=5, per=-1), ValueError, "per"),
    ("limit per nan", lambda s: s.limit("a", rate=5, per=math.nan), ValueError, "per"),
    ("limit per timedelta 0", lambda s: s.limit("a", rate=5, per=timedelta(0)), ValueError, "per"),
    ("limit per None", lambda s: s.limit("a", rate=5, per=None), TypeError, "per"),
    ("limit burst 0", lambda s: s.limit("a", rate=5, burst=0), ValueError, "burst"),
    ("limit burst 1.5", lambda s: s.limit("a", rate=5, burst=1.5), TypeError, "burst"),
    ("limit burst True", lambda s: s.limit("a", rate=5, burst=True), TypeError, "burst"),
    ("limit max_running 0", lambda s: s.limit("a", max_running=0), ValueError, "max_running"),
    ("limit max_running True", lambda s: s.limit("a", max_running=True), TypeError, "max_running"),
    ("limit max_running 2.0", lambda s: s.limit("a", max_running=2.0), TypeError, "max_running"),
    ("remove_limit a,b", lambda s: s.remove_limit("a,b"), ValueError, "limiter name"),
    ("remove_limit int", lambda s: s.remove_limit(5), TypeError, "limiter name"),
    # fairness weights
    ("set_weight 0", lambda s: s.set_weight("k", 0), ValueError, "weight"),
    ("set_weight -1", lambda s: s.set_weight("k", -1), ValueError, "weight"),
    ("set_weight nan", lambda s: s.set_weight("k", math.nan), ValueError, "weight"),
    ("set_weight inf", lambda s: s.set_weight("k", math.inf), ValueError, "weight"),
    ("set_weight huge", lambda s: s.set_weight("k", 1e7), ValueError, "weight"),
    ("set_weight True", lambda s: s.set_weight("k", True), TypeError, "weight"),
    ("set_weight '2'", lambda s: s.set_weight("k", "2"), TypeError, "weight"),
    ("set_weight key int", lambda s: s.set_weight(5, 1.0), TypeError, "key"),
    ("set_weight key empty", lambda s: s.set_weight("", 1.0), ValueError, "key"),
    # a queue's priority aging
    ("set_queue aging 0", lambda s: s.set_queue("q", priority_aging=0), ValueError, "priority_aging"),
    ("set_queue aging -1", lambda s: s.set_queue("q", priority_aging=-1), ValueError, "priority_aging"),
    ("set_queue aging '1'", lambda s: s.set_queue("q", priority_aging="1"), TypeError, "priority_aging"),
    ("set_queue queue", lambda s: s.set_queue("a b", priority_aging=1), ValueError, "queue"),
    ("set_queue nothing", lambda s: s.set_queue("q"), TypeError, "give priority_aging=, max_pending= or both"),
    ("set_queue max -1", lambda s: s.set_queue("q", max_pending=-1), ValueError, "max_pending"),
    ("set_queue max 1.5", lambda s: s.set_queue("q", max_pending=1.5), TypeError, "max_pending"),
    ("set_queue max True", lambda s: s.set_queue("q", max_pending=True), TypeError, "max_pending"),
    ("set_queue max huge", lambda s: s.set_queue("q", max_pending=10**10), ValueError, "max_pending"),
    # pauses by key
    ("pause key int", lambda s: s.pause(key=5), TypeError, "key"),
    ("pause key empty", lambda s: s.pause("q", key=""), ValueError, "key"),
    ("resume key long", lambda s: s.resume(key=LONG), ValueError, "key"),
    ("pause queue and key", lambda s: s.pause("a b", key="k"), ValueError, "queue"),
]


@pytest.mark.parametrize(("call", "exc", "word"), [pytest.param(c, e, w, id=i) for i, c, e, w in BAD_CALLS])
def test_bad_placement_input(sched, unchanged, call, exc, word):
    with pytest.raises(exc) as bad:
        call(sched)
    assert word in str(bad.value), f"the message does not name {word!r}: {bad.value}"
