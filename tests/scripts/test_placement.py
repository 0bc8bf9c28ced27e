"""How dispatch places many tasks in one call: processors' cards, rankings kept in memory during the
call and written back once, and the same choices as placing the tasks one call at a time."""

from __future__ import annotations

import random

import pytest

import luasched
from luasched.core import ops
from luasched.core.fields import STATS

from .util import audit_ok


def card(sched: luasched.Scheduler, pid: str) -> str | None:
    raw = sched.client.hget(sched.keys.cards, pid)
    return None if raw is None else ops.text(raw)


def lease_deadline(sched: luasched.Scheduler, pid: str) -> int:
    return int(sched.client.zscore(sched.keys.procs, pid))


def test_a_processors_card_follows_its_record(sched, clock):
    p = sched.processor(capacity=3, queues=("a", "b"), lease=10)
    assert p.register()
    assert card(sched, p.id) == f"3 {lease_deadline(sched, p.id)} a,b"

    clock.advance(4)
    assert p.heartbeat()
    assert card(sched, p.id) == f"3 {lease_deadline(sched, p.id)} a,b"
    assert lease_deadline(sched, p.id) == int((clock.now + 10) * 1000)
    assert p.register()  # a replayed registration renews the lease, the card with it
    assert card(sched, p.id) == f"3 {lease_deadline(sched, p.id)} a,b"
    audit_ok(sched)

    p.deregister()
    assert card(sched, p.id) is None
    audit_ok(sched)


def test_a_reaped_processor_leaves_no_card(sched, clock):
    p = sched.processor(lease=5)
    assert p.register()
    clock.advance(6)
    sched.reap()
    assert card(sched, p.id) is None
    assert sched.audit().counts["processors"] == 0
    audit_ok(sched)


def test_audit_finds_a_card_out_of_step_or_of_no_processor(sched):
    p = sched.processor(capacity=2)
    assert p.register()
    sched.client.hset(sched.keys.cards, p.id, "9 1 default")
    sched.client.hset(sched.keys.cards, "ghost", "1 1 default")

    problems = sched.audit().problems

    assert any(p.id in line and "card" in line and "out of step" in line for line in problems), problems
    assert any("ghost" in line and "card" in line and "not registered" in line for line in problems), problems


def test_a_processor_without_a_card_is_read_from_its_record(sched):
    """A processor registered by a version before cards: dispatch reads its record instead."""
    p = sched.processor(capacity=2)
    assert p.register()
    sched.client.hdel(sched.keys.cards, p.id)
    a, b, c = sched.submit_many("add", [(1,), (2,), (3,)])

    assert sched.dispatch() == [(a.id, p.id), (b.id, p.id)]
    assert sched.queue_lengths() == {"default": 1}
    audit_ok(sched)


def _world(sched: luasched.Scheduler, clock, seed: int) -> tuple[list[str], int]:
    """Processors of random capacity serving "default" and some of "x", "y", a few of them lapsed,
    some already loaded; then tasks on "default". Returns the processor ids in registration order
    and how many tasks are queued."""
    rng = random.Random(seed)
    pids = []
    for i in range(300):
        queues = ("default", *rng.sample(("x", "y"), rng.randint(0, 2)))
        lease = 5 if i % 15 == 7 else 600
        p = sched.processor(capacity=rng.randint(1, 3), queues=queues, lease=lease, name=f"p{i}")
        assert p.register()
        pids.append(p.id)
    sched.submit_many("add", [(i,) for i in range(40)], queue="x")
    assert len(sched.dispatch(limit=40)) == 40  # some processors carry load from earlier placements
    clock.advance(10)  # the lease-5 processors lapse
    n = 700
    sched.submit_many("add", [(i,) for i in range(n)])
    return pids, n


def _ranking(sched: luasched.Scheduler, pids: list[str]) -> dict[str, list[tuple[int, float]]]:
    """Each queue's idle processors (the rankings of all its kinds, merged), lowest score first."""
    index = {pid: i for i, pid in enumerate(pids)}
    out = {}
    for q in ("default", "x", "y"):
        merged = [(s, index[ops.text(m)]) for k in ops.text(sched.client.hkeys(sched.keys.queue_kinds(q)))
                  for m, s in sched.client.zrange(sched.keys.idle_rank(k, q), 0, -1, withscores=True)]
        out[q] = [(i, s) for s, i in sorted(merged)]
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_one_call_places_as_one_task_per_call_would(sched, make_client, namespace, clock, seed):
    """700 tasks over 300 processors (more than one read of the ranking's head, so the ranking is
    written back and read again within the call): the same processor for every task, the same
    rankings after, as 700 calls that place one task each."""
    twin = luasched.Scheduler(make_client(), namespace=namespace + "-twin", clock=clock, dispatch_on_submit=False)
    pids, n = _world(sched, clock, seed)
    clock.advance(-10)
    twin_pids, _ = _world(twin, clock, seed)

    batch = [(pids.index(pid), ops.text(tid)) for tid, pid in sched.dispatch(limit=n)]
    one_by_one = []
    for _ in range(n):
        got = twin.dispatch(limit=1)
        if not got:
            break
        one_by_one += [(twin_pids.index(pid), tid) for tid, pid in got]

    assert [i for i, _ in batch] == [i for i, _ in one_by_one]
    assert 0 < len(batch) < n  # the free capacity ran out before the tasks did
    assert all(i % 15 != 7 for i, _ in batch), "a lapsed processor was given a task"
    assert _ranking(sched, pids) == _ranking(twin, twin_pids)
    assert sched.client.hget(sched.keys.stats, STATS.seq) == twin.client.hget(twin.keys.stats, STATS.seq)
    assert sched.dispatch(limit=n) == [] and sched.queue_lengths()["default"] == n - len(batch)
    audit_ok(sched)
    audit_ok(twin)
