"""luasched, through the same interface as the peers: `luasched processor` processes running
bench.app:sched, and in the plain and eager modes a `luasched scheduler` process.

Variants: plain (a scheduler process dispatches), eager (``dispatch_on_submit=True``; for a
backlog submitted before any processor exists the drain still needs the scheduler process, so the
drain path is the plain one), take_next (processors started with ``--take-next`` and NO scheduler
process: one ``dispatch()`` call from the benchmark starts each slot's first task, after which
every ack takes the next task from the queue). In the latency workload, "plain+result" and
"eager+result" wait with ``TaskHandle.result()`` (the task returns its start time) instead of the
marker task that every peer uses (it RPUSHes its start time, the producer BLPOPs it).
"default" runs `luasched processor bench.app:sched --redis URL` with no other flag (the defaults:
capacity, dispatch on ack, the scheduler's duties in the processor, per-task log lines) and no
scheduler process, fed by a ``Scheduler`` made with its defaults: what a user gets from the
documented commands. The other modes pin what they measure with explicit flags (``--no-scheduler``
where a scheduler process runs or none may, ``--no-dispatch-on-ack`` in the plain mode).
"+batch" runs the processors with ``--batch``: one slot starts and acks up to capacity tasks per
script call. "+ack" runs them with ``--dispatch-on-ack``: each ack fills the slots it freed (the
scheduler process still runs, for what is left); "plain+batch+ack" does both: one slot whose ack
fills and starts up to capacity tasks per script call, by the least-loaded rule.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import luasched
from luasched.core.options import ProcessorOptions

from .base import Base

VARIANTS = ("plain", "eager", "take_next", "default")
#: What `luasched processor` runs with no --capacity.
DEFAULT_CAPACITY = ProcessorOptions().capacity


class Adapter(Base):
    name = "luasched"
    version = luasched.__version__
    batch_api = "Scheduler.submit_many (1,000 tasks per script call, one pipeline)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variant = self.variant or "plain"
        self.mode, *opts = self.variant.split("+")
        self.wait_with_result = "result" in opts
        self.batch = "batch" in opts
        self.on_ack = "ack" in opts
        if self.mode not in VARIANTS or set(opts) - {"result", "batch", "ack"}:
            raise ValueError(f"luasched variant must be one of {VARIANTS}, not {self.variant!r}")
        self.namespace = os.environ.get("BENCH_NAMESPACE", "bench")
        eager = {} if self.mode == "default" else {"dispatch_on_submit": self.mode == "eager"}
        self.sched = luasched.Scheduler(self.url, namespace=self.namespace, **eager)
        self.done_key = self.sched.keys.stats
        #: In the commands workload the poll reads the done counter with one HGET (what
        #: counts()["done"] reads too), so that the poll's own commands can be subtracted exactly.
        self.cheap_poll = False

    @property
    def concurrency(self) -> str:  # type: ignore[override]
        procs = f"{self.processes} processes" if self.processes > 1 else "1 process"
        if self.mode == "default":
            return f"{procs}, the defaults: {DEFAULT_CAPACITY} thread slot{'s' if DEFAULT_CAPACITY > 1 else ''}"
        if self.batch:
            return f"{procs}, one slot running up to {self.capacity} tasks per round trip (--batch)"
        return f"{procs}, {self.capacity} thread slot{'s' if self.capacity > 1 else ''}"

    def label(self) -> str:
        capacity = DEFAULT_CAPACITY if self.mode == "default" else self.capacity
        label = (f"luasched {self.mode}{' batch' if self.batch else ''}{' +ack' if self.on_ack else ''}"
                 f" c{capacity}"
                 + (" (result())" if self.wait_with_result else ""))
        return label + (f" x{self.processes}" if self.processes > 1 else "")

    def submit_one(self, n: int) -> None:
        for _ in range(n):
            self.sched.submit("noop")

    def submit_batch(self, n: int, batch: int) -> None:
        for start in range(0, n, batch):
            self.sched.submit_many("noop", [()] * min(batch, n - start))

    def submit_marker(self, key: str) -> None:
        self.sched.submit("mark_started", key)

    def result_latency_once(self) -> float:
        sent = time.time()
        began = self.sched.submit("started_at").result(timeout=10)
        return float(began - sent)

    exact_remaining = True

    def remaining(self, n: int) -> int:
        if self.cheap_poll:
            self.poll_commands["hget"] += 1
            return n - int(self.redis.hget(self.done_key, "done") or 0)
        self.poll_commands["evalsha"] += 1
        return n - self.sched.counts()["done"]

    def worker_env(self) -> dict[str, str]:
        eager = "" if self.mode == "default" else "1" if self.mode == "eager" else "0"
        return {"BENCH_NAMESPACE": self.namespace, "BENCH_EAGER": eager}

    def worker_commands(self) -> list[list[str]]:
        exe = [sys.executable, "-m", "luasched"]
        if self.mode == "default":  # BENCH_PROCESSOR_FLAGS: flags to A/B against the defaults
            extra = os.environ.get("BENCH_PROCESSOR_FLAGS", "").split()
            return [[*exe, "processor", "bench.app:sched", "--redis", self.url, *extra] for _ in range(self.processes)]
        take = ["--take-next"] if self.mode == "take_next" else []
        take += ["--batch"] if self.batch else []
        take += ["--dispatch-on-ack"] if self.on_ack else [] if self.mode == "take_next" else ["--no-dispatch-on-ack"]
        cmds = [[*exe, "processor", "bench.app:sched", "--redis", self.url, "--capacity", str(self.capacity),
                 "--no-log-tasks", "--log-level", "warning", "--no-scheduler", *take] for _ in range(self.processes)]
        if self.mode != "take_next":
            cmds.append([*exe, "scheduler", "bench.app:sched", "--redis", self.url, "--log-level", "warning"])
        return cmds

    def kick(self) -> bool:
        if self.mode != "take_next":
            return True
        if self.sched.counts()["processors"] < self.processes:
            return False
        self.sched.dispatch(limit=100)  # the first task of each slot; acks take the rest
        return True

    def close(self) -> None:
        self.sched.close()
        super().close()
