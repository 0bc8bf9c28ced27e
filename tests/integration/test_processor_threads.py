"""The threaded processor runtime: slots fed from the inbox, the scheduler loop, the opt-in modes."""

from __future__ import annotations

import collections
import contextlib
import threading
import time

import pytest
import redis

import luasched


def test_scheduler_loop_and_processor_threads_run_everything(live):
    sched = live.sched()

    @sched.task
    def square(x: int) -> int:
        return x * x

    for _ in range(3):
        live.processor(sched, capacity=2)
    live.loop(sched)
    group = sched.map(square, [(i,) for i in range(60)])
    assert group.results(timeout=30) == [i * i for i in range(60)]
    counts = sched.counts()
    assert counts["done"] == 60 and counts["queued"] == 0 and counts["assigned"] == 0
    assert sched.audit().ok


def test_stop_lets_running_tasks_finish_and_gives_back_the_rest(live):
    sched = live.sched()
    release = threading.Event()
    began = threading.Event()

    @sched.task
    def slow(x: int) -> int:
        began.set()
        release.wait(10)
        return x

    p = sched.processor(capacity=1, scheduler=False)  # dispatched by hand below
    p.start()
    handles = sched.submit_many(slow, [(i,) for i in range(3)])
    assert sched.dispatch() == [(handles[0].id, p.id)]  # capacity 1: one at a time
    assert began.wait(5)
    stopper = threading.Thread(target=p.stop, kwargs={"timeout": 10})
    stopper.start()
    time.sleep(0.05)  # let stop() set the flag while the task is still running
    release.set()
    stopper.join(10)
    assert handles[0].result(timeout=5) == 0  # the running task finished and was acked
    assert [h.state for h in handles[1:]] == ["queued", "queued"]
    counts = sched.counts()
    assert counts["processors"] == 0 and counts["running"] == 0
    assert sched.audit().ok


def test_no_scheduler_at_all_with_dispatch_on_submit_and_take_next(live):
    """Small deployments: submit hands the task out, and each ack takes the next from the queue."""
    sched = live.sched(dispatch_on_submit=True)
    seen: list[str] = []

    @sched.task
    def echo(x: int) -> int:
        seen.append(threading.current_thread().name)
        return x

    live.processor(sched, capacity=1, take_next=True, scheduler=False)
    handles = sched.submit_many(echo, [(i,) for i in range(40)])
    assert [h.result(timeout=20) for h in handles] == list(range(40))
    assert sched.counts()["last_dispatch_ms"] == 0, "nothing may have called dispatch"
    assert sched.audit().ok


def test_plain_mode_never_dispatches_behind_your_back(make_sched):
    """submit and process_available do only what they say: every assignment comes from dispatch()."""
    sched = make_sched()

    @sched.task
    def one() -> int:
        return 1

    p = sched.processor(capacity=4)
    p.register()
    hs = sched.submit_many(one, [()] * 3)
    assert [h.state for h in hs] == ["queued"] * 3
    assert p.process_available() == 0
    assert [h.state for h in hs] == ["queued"] * 3
    assert sorted(sched.dispatch()) == sorted((h.id, p.id) for h in hs)
    assert p.process_available() == 3
    assert [h.result(timeout=1) for h in hs] == [1, 1, 1]


def test_a_processor_cut_off_past_its_lease_registers_again_and_carries_on(make_sched, clock):
    """Its lease lapsed (here: the injected clock jumps) and reap took its inbox back: the
    heartbeat thread learns it was lost, and the processor joins again under a new id."""
    sched = make_sched(clock=clock)

    @sched.task
    def double(x: int) -> int:
        return 2 * x

    p = sched.processor(lease=0.3, scheduler=False)  # heartbeats every 0.1 s of real time; reaped by hand
    p.start()
    try:
        old = p.id
        stranded = sched.submit(double, 1)
        clock.advance(60)  # before any dispatch: the task waits in the queue
        assert sched.dispatch() == []  # the lease lapsed: dispatch skips the processor  # as if cut off for a minute
        taken = sched.reap()
        deadline = time.monotonic() + 10
        while p.id == old and time.monotonic() < deadline:
            time.sleep(0.02)
        assert p.id != old, "the processor never noticed it was lost"
        assert taken.processors == [old]
        while sched.counts()["processors"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stranded.state == "queued"  # reap gave it back: the lost processor never ran it
        assert sched.dispatch() == [(stranded.id, p.id)]
        assert stranded.result(timeout=10) == 2
    finally:
        p.stop(timeout=5)
    assert sched.audit().ok


def test_an_idle_slot_starts_with_the_injected_clocks_time_after_its_wait(make_sched, clock):
    """An idle slot blocks, then starts what woke it: with an injected clock the start must carry
    the time after the wait (its timeout deadline counts from then), not the time it began to wait."""
    sched = make_sched(clock=clock, dispatch_on_submit=True)
    release = threading.Event()

    @sched.task(timeout=30.0)
    def hold(x: int) -> int:
        release.wait(10)
        return x

    p = sched.processor(capacity=1, lease=1000.0)  # alive across the clock's jump
    p.start()
    try:
        release.set()
        assert sched.submit(hold, 1).result(timeout=10) == 1  # the slot then waits, idle
        time.sleep(0.2)
        release.clear()
        clock.advance(100)
        h = sched.submit(hold, 2)  # dispatched to the waiting slot, which wakes and starts it
        deadline = time.monotonic() + 10
        while h.state != "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert h.state == "running"
        assert sched.client.zscore(sched.keys.running, h.id) == (clock.now + 30.0) * 1000
        release.set()
        assert h.result(timeout=10) == 2
    finally:
        release.set()
        p.stop(timeout=5)
    assert sched.audit().ok


class CountingConnection(redis.Connection):
    """Counts what each thread sends: one send is one round trip (a command or a pipeline)."""

    sends: collections.Counter[str] = collections.Counter()

    def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
        CountingConnection.sends[threading.current_thread().name] += 1
        super().send_packed_command(command, check_health)


@pytest.mark.real_redis
@pytest.mark.parametrize("mode", ["plain", "eager"])
def test_a_slot_fed_by_a_scheduler_uses_one_round_trip_per_task(redis_server, namespace, mode):
    """Ack, wait for the next wake-up and start what it announces: one pipeline per task, in the
    plain mode (a scheduler loop dispatches) and the eager one (submit dispatches)."""
    eager = mode == "eager"
    producer = luasched.Scheduler(redis_server.client(), namespace=namespace, dispatch_on_submit=eager)
    pool = redis.ConnectionPool(port=redis_server.port, protocol=2, connection_class=CountingConnection)
    sched = luasched.Scheduler(redis.Redis(connection_pool=pool), namespace=namespace)

    @sched.task
    def one() -> int:
        return 1

    CountingConnection.sends.clear()
    p = sched.processor(capacity=1)
    p.start()
    stop = threading.Event()
    loop = threading.Thread(target=producer.run, args=(stop,))
    if not eager:
        loop.start()
    try:
        n = 40
        if eager:  # one at a time: submit hands each to the idle processor
            assert [producer.submit("one").result(timeout=20) for _ in range(n)] == [1] * n
        else:
            handles = producer.submit_many("one", [()] * n)
            assert [h.result(timeout=20) for h in handles] == [1] * n
        slot = CountingConnection.sends[f"{p.id}-slot0"]
        # setup: the first start and first ack go alone, each NOSCRIPT-load-resend on a new server
        assert n <= slot <= n + 8, f"{slot} round trips for {n} tasks (two per task before)"
    finally:
        stop.set()
        producer.wake()
        if loop.is_alive():
            loop.join(5)
        p.stop(timeout=5)
    assert producer.audit().ok
    sched.close()
    producer.close()


class CountingPool(redis.ConnectionPool):
    """Counts, per thread, how often a connection is borrowed from the pool."""

    borrows: collections.Counter[str] = collections.Counter()

    def get_connection(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        CountingPool.borrows[threading.current_thread().name] += 1
        return super().get_connection(*args, **kwargs)


@pytest.mark.real_redis
def test_a_slot_holds_one_connection_for_its_calls_and_closes_it(redis_server, namespace, monkeypatch):
    """A complete-and-take-next slot makes one script call per task over the connection it holds,
    not one borrowed from the pool per call; it survives the server dropping that connection, and
    closes it when it stops."""
    pool = CountingPool(port=redis_server.port, protocol=2)
    sched = luasched.Scheduler(redis.Redis(connection_pool=pool), namespace=namespace)
    admin = redis_server.client()

    @sched.task
    def one() -> int:
        return 1

    held: list = []
    real_hold = luasched._backends.fastpath.hold

    @contextlib.contextmanager
    def spy(client):  # type: ignore[no-untyped-def]
        with real_hold(client) as conn:
            held.append(conn)
            yield conn

    monkeypatch.setattr(luasched._backends.fastpath, "hold", spy)
    CountingPool.borrows.clear()
    p = sched.processor(capacity=1, take_next=True)
    p.start()
    try:
        handles = sched.submit_many("one", [()] * 40)
        sched.dispatch(limit=1)
        assert [h.result(timeout=20) for h in handles] == [1] * 40
        slot = CountingPool.borrows[f"{p.id}-slot0"]
        assert slot <= 6, f"the slot borrowed a connection {slot} times for 40 tasks"

        # the server drops every client connection, the held one too: the slot carries on
        admin.client_kill_filter(_type="normal", skipme=True)
        handles = sched.submit_many("one", [()] * 10)
        sched.dispatch(limit=1)
        assert [h.result(timeout=20) for h in handles] == [1] * 10
    finally:
        assert p.stop(timeout=5)
    assert len(held) == 1 and held[0] is not None
    assert held[0]._sock is None, "a stopped slot must close the connection it held"
    assert sched.audit().ok
    sched.close()


def test_no_connection_is_held_for_a_blocking_pool_or_another_client(redis_server):
    from luasched._backends.fastpath import hold

    with hold(redis.Redis(connection_pool=redis.BlockingConnectionPool(port=redis_server.port))) as conn:
        assert conn is None
    single = redis.Redis(port=redis_server.port, single_connection_client=True)
    with hold(single) as conn:
        assert conn is None
    single.close()
    client = redis.Redis(port=redis_server.port, max_connections=1)
    with hold(client) as conn:
        assert conn is not None and conn.send_command("PING") is None and conn.read_response() in (b"PONG", "PONG")
        assert client.ping()  # the held connection is not the pool's: its one connection is free
    assert conn._sock is None, "the held connection is closed at the end"


@pytest.mark.real_redis
def test_dispatch_on_ack_drains_a_backlog_least_loaded_first_with_one_round_trip_per_task(redis_server, namespace):
    """Each ack fills the slots it freed from the queue, by the least-loaded rule: after one
    dispatch call a backlog drains over both processors with no scheduler, one pipeline per task."""
    # A backlog submitted the plain way (queued, placed by nobody), started by one dispatch call:
    producer = luasched.Scheduler(redis_server.client(), namespace=namespace, dispatch_on_submit=False)
    pool = redis.ConnectionPool(port=redis_server.port, protocol=2, connection_class=CountingConnection)
    sched = luasched.Scheduler(redis.Redis(connection_pool=pool), namespace=namespace)
    ran_on: collections.Counter[str] = collections.Counter()

    @sched.task
    def where() -> str:
        name = threading.current_thread().name
        ran_on[name.split("-slot")[0]] += 1
        time.sleep(0.002)  # long enough that both processors are busy at once
        return name

    CountingConnection.sends.clear()
    procs = [sched.processor(capacity=2, dispatch_on_ack=True, name=f"p{i}", scheduler=False) for i in range(2)]
    for p in procs:
        p.start()
    try:
        n = 120
        handles = producer.submit_many("where", [()] * n)
        assert len(producer.dispatch()) == 4  # each slot's first task; the acks place the rest
        kicked = producer.counts()["last_dispatch_ms"]
        assert len({h.result(timeout=30) for h in handles}) == 4, "every slot of both processors ran tasks"
        assert producer.counts()["last_dispatch_ms"] == kicked, "nothing else may have called dispatch"
        assert sum(ran_on.values()) == n and all(ran_on[p.id] >= n // 4 for p in procs), ran_on
        for p in procs:  # setup: the first start and ack go alone, NOSCRIPT-load-resends
            sends = sum(CountingConnection.sends[f"{p.id}-slot{slot}"] for slot in range(2))
            assert sends <= ran_on[p.id] + 12, f"{p.id}: {sends} round trips for {ran_on[p.id]} tasks"
    finally:
        for p in procs:
            p.stop(timeout=5)
    assert producer.audit().ok
    sched.close()
    producer.close()


@pytest.mark.real_redis
def test_dispatch_on_ack_in_batches_places_and_starts_a_batch_per_round_trip(redis_server, namespace):
    """A batch slot with dispatch_on_ack: each ack fills the batch it freed from the queue and,
    while the queue holds more, starts it in the same call: one round trip per batch of 8, after
    one dispatch call and with no scheduler."""
    # A backlog submitted the plain way (queued, placed by nobody), started by one dispatch call:
    producer = luasched.Scheduler(redis_server.client(), namespace=namespace, dispatch_on_submit=False)
    pool = redis.ConnectionPool(port=redis_server.port, protocol=2, connection_class=CountingConnection)
    sched = luasched.Scheduler(redis.Redis(connection_pool=pool), namespace=namespace)

    @sched.task
    def noop() -> None:
        pass

    CountingConnection.sends.clear()
    p = sched.processor(capacity=8, batch=True, dispatch_on_ack=True, name="b", scheduler=False)
    p.start()
    try:
        n = 400
        handles = producer.submit_many("noop", [()] * n)
        assert len(producer.dispatch()) == 8  # the batch slot's first batch; the acks place the rest
        kicked = producer.counts()["last_dispatch_ms"]
        for h in handles:
            h.result(timeout=30)
        assert producer.counts()["last_dispatch_ms"] == kicked, "nothing else may have called dispatch"
        sends = CountingConnection.sends[f"{p.id}-slot0"]
        assert sends <= n // 8 + 12, f"{sends} round trips for {n} tasks in batches of 8"
    finally:
        p.stop(timeout=5)
    assert p.processed == n
    assert producer.audit().ok
    sched.close()
    producer.close()


def test_dispatch_on_ack_and_take_next_exclude_each_other(make_sched):
    sched = make_sched()
    with pytest.raises(ValueError, match="take_next and dispatch_on_ack"):
        sched.processor(take_next=True, dispatch_on_ack=True)
    with pytest.raises(TypeError, match="dispatch_on_ack must be a bool"):
        sched.processor(dispatch_on_ack="yes")
