"""Counts the round trips this process makes to Redis, when BENCH_RT_FILE names a file.

Loaded as ``sitecustomize`` (bench/rtcount is put first on PYTHONPATH of a measured process).
Every peer and luasched speak to Redis through redis-py, whose connections (sync and asyncio)
send each command, and each pipeline as a whole, with one ``send_packed_command``: one call is
one round trip. The count is written to BENCH_RT_FILE.<pid> every 0.2 s and at exit, so a process
that is killed still leaves a count at most 0.2 s old (the runners stop workers only after the
work is done and the count has settled). A forked child (dramatiq's and taskiq's worker
processes) starts from zero with a file and a writer thread of its own.
"""

from __future__ import annotations

import os

_FILE = os.environ.get("BENCH_RT_FILE")

if _FILE:
    import atexit
    import threading

    COUNT = {"round_trips": 0}
    ENABLED = [True]

    def _dump() -> None:
        target = f"{_FILE}.{os.getpid()}"
        try:
            with open(target + ".tmp", "w") as f:
                f.write(f'{{"round_trips": {COUNT["round_trips"]}}}')
            os.replace(target + ".tmp", target)
        except OSError:
            pass

    def _patch() -> None:
        import redis.connection as sync_conn

        orig = sync_conn.AbstractConnection.send_packed_command

        def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
            if ENABLED[0]:
                COUNT["round_trips"] += 1
            return orig(self, command, check_health)

        sync_conn.AbstractConnection.send_packed_command = send_packed_command
        try:
            import redis.asyncio.connection as async_conn
        except ImportError:
            return
        aorig = async_conn.AbstractConnection.send_packed_command

        async def asend_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
            if ENABLED[0]:
                COUNT["round_trips"] += 1
            return await aorig(self, command, check_health)

        async_conn.AbstractConnection.send_packed_command = asend_packed_command

    _patch()

    def _loop() -> None:
        ev = threading.Event()
        while not ev.wait(0.2):
            _dump()

    def _start() -> None:
        threading.Thread(target=_loop, daemon=True, name="bench-rtcount").start()

    def _in_child() -> None:
        COUNT["round_trips"] = 0
        _start()

    _start()
    os.register_at_fork(after_in_child=_in_child)
    atexit.register(_dump)
