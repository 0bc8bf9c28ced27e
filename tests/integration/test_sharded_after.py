"""A task that waits for others on a Sharded: ``submit(..., _after=[...])`` puts it on the shard of
what it waits for (its id drawn to hash there), as ``TaskHandle.then`` does by construction; what
it waits for on two shards, or an id or unique key of its own that hashes to another shard, is
refused with nothing written. On the embedded server and on a real one."""

from __future__ import annotations

import pytest

import luasched


@pytest.fixture
def work(make_client, namespace):
    sharded = luasched.Sharded(make_client(), namespaces=[f"{namespace}.{i}" for i in range(4)],
                               dispatch_on_submit=False)

    @sharded.task
    def add(a: int, b: int) -> int:
        return a + b

    @sharded.task
    def double(value: int) -> int:
        return 2 * value

    yield sharded
    sharded.close()


def on_two_shards(work: luasched.Sharded) -> tuple[luasched.TaskHandle, luasched.TaskHandle]:
    first = work.submit("add", 1, 2)
    while True:
        other = work.submit("add", 3, 4)
        if other._sched is not first._sched:
            return first, other


def run_all(work: luasched.Sharded) -> None:
    processors = work.processor(capacity=4)
    processors.register()
    for _ in range(3):  # parents, then what they released
        work.dispatch()
        processors.process_available()
    processors.deregister()


def test_a_task_after_another_goes_to_its_shard_and_runs_after_it(work):
    first, other = on_two_shards(work)
    after_first = work.submit("add", 10, 20, _after=[first])
    after_other = work.submit("add", 5, 6, _after=[other.id])  # a task id alone
    chained = other.then("double")  # the handle's own shard, fed the result
    assert after_first._sched is first._sched and work.shard(after_first.id) is first._sched
    assert after_other._sched is other._sched and work.shard(after_other.id) is other._sched
    assert after_first.state == after_other.state == "waiting"
    run_all(work)
    assert (after_first.result(timeout=5), after_other.result(timeout=5)) == (30, 11)
    assert chained.result(timeout=5) == 14
    counts = work.counts()
    assert counts["done"] == counts["submitted"] >= 5  # the parents (and the tries to reach 2 shards), 3 after
    assert work.audit().ok


def test_waiting_across_shards_or_on_an_id_of_another_shard_is_refused(work):
    first, other = on_two_shards(work)
    before = work.counts()["submitted"]
    with pytest.raises(ValueError, match="different shards"):
        work.submit("add", 1, 1, _after=[first, other])
    created = []
    with pytest.raises(ValueError, match="hashes to another shard"):
        for i in range(50):  # some id of these hashes to another shard than first's
            created.append(work.submit("add", 1, 1, _after=[first], _id=f"mine-{i}"))
    with pytest.raises(ValueError, match="none of this Sharded"):
        work.submit("add", 1, 1, _after=[luasched.Scheduler().submit("add", 1, 1)])
    with pytest.raises(ValueError, match="_after is empty"):
        work.submit("add", 1, 1, _after=[])
    assert work.counts()["submitted"] - before == len(created) < 50  # those before the refused one
    assert all(h._sched is first._sched and h.state == "waiting" for h in created)
    assert work.audit().ok
