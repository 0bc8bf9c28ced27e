def test_round_trip(sched, clock):
    @sched.task
    def add(a, b):
        return a + b

    h = sched.submit(add, 2, 3)
    p = sched.processor()
    assert p.register()
    assert sched.dispatch() == [(h.id, p.id)]
    assert p.process_available() == 1
    assert h.result(timeout=1) == 5
    assert sched.audit().ok
