"""``luasched demo``: submit tasks, run them on several processors, and summarise their results
with a chord callback (``group.then``) that runs on a processor too."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import luasched

from ..connection import redact
from ..core.words import counted
from .common import EXIT_FAILED, EXIT_USAGE, complain

#: How long ``stop`` waits for a processor's running task before giving up on it.
STOP_TIMEOUT_S = 10.0


@click.command()
@click.option("--tasks", "n_tasks", type=int, default=20, show_default=True,
              help="How many tasks to submit (as one group).")
@click.option("--processors", "n_processors", type=int, default=4, show_default=True,
              help="How many processors (threads, capacity 1 each) run them.")
@click.option("--redis", "redis_url", metavar="URL", default=None,
              help="Run on this Redis, in a fresh namespace, instead of the embedded server.")
@click.option("--seed", type=int, default=None,
              help="Seed of the tasks' randomness, for a reproducible run.")
@click.pass_context
def demo(ctx: click.Context, n_tasks: int, n_processors: int, redis_url: str | None,
         seed: int | None) -> None:
    """Submit tasks, run them on several processors, and summarise their results."""
    try:
        ok = run_demo(Console(), n_tasks, n_processors, redis_url, seed)
    except luasched.ResultTimeout as exc:
        complain(exc)
        ctx.exit(EXIT_FAILED)
    except (luasched.LuaschedError, ValueError, TypeError) as exc:
        complain(exc)
        ctx.exit(EXIT_USAGE)
    ctx.exit(0 if ok else EXIT_FAILED)


def run_task(delay_s: float, seed: int) -> int:
    """The demo's task: sleeps ``delay_s`` seconds, then returns a random integer 0..10."""
    time.sleep(delay_s)
    return random.Random(seed).randint(0, 10)


def summarise_results(results: list[object]) -> dict[str, object]:
    """The demo's chord callback: the group's results in submission order (a failed task stands
    as ``{"error": ..., "type": ...}``) summed up, on whichever processor takes it."""
    values = [v for v in results if isinstance(v, int)]
    info = luasched.current_task()
    return {"count": len(values), "failed": len(results) - len(values), "sum": sum(values),
            "mean": f"{sum(values) / len(values):.2f}" if values else "-",
            "processor": info.processor if info else None}


def run_demo(console: Console, n_tasks: int, n_processors: int, redis_url: str | None,
             seed: int | None) -> bool:
    """The demo on the embedded server or ``redis_url``: True when every task succeeded and
    audit holds at the end."""
    if n_tasks < 1:
        raise ValueError(f"--tasks must be at least 1, not {n_tasks}")
    if n_processors < 1:
        raise ValueError(f"--processors must be at least 1, not {n_processors}")
    seed = seed if seed is not None else secrets.randbelow(2**31)
    rng = random.Random(seed)
    # The plan is drawn here, not in the tasks, so a seed reproduces it whatever ran where.
    items = [(round(rng.uniform(0.1, 0.5), 3), rng.randrange(2**31)) for _ in range(n_tasks)]
    sequential_s = sum(delay_s for delay_s, _ in items)
    namespace = f"demo-{secrets.token_hex(4)}"
    with _scheduler(redis_url, namespace) as sched:
        sched.task(run_task)
        sched.task(summarise_results)
        started = time.monotonic()
        group = sched.map(run_task, items)
        summary = group.then(summarise_results, _on_failure="run")  # queued by the last task's ack
        where = "the embedded server" if redis_url is None else redact(redis_url)
        console.print(f"luasched demo: {counted(n_tasks, 'task')} on {counted(n_processors, 'processor')}, "
                      f"{escape(where)}, namespace {namespace}, seed {seed}", soft_wrap=True)
        with _running(sched, n_processors) as processors:
            values, per_processor, failures = _gather(console, group, timeout_s=sequential_s + 30)
            wall_s = time.monotonic() - started
            summed = summary.result(timeout=30)
        for p in processors:
            per_processor.setdefault(p.id, 0)
        _summarise(console, summed, per_processor, wall_s, sequential_s)
        audit = sched.audit()
    if audit.ok:
        console.print("audit ok: every task is in exactly one place and the counters add up")
    else:
        console.print(f"audit FAILED: {escape('; '.join(audit.problems))}", soft_wrap=True)
    return failures == 0 and audit.ok and summed["sum"] == sum(values)


@contextmanager
def _scheduler(redis_url: str | None, namespace: str) -> Iterator[luasched.Scheduler]:
    """A Scheduler on a namespace of its own, whose keys are deleted (and client closed) after."""
    sched = luasched.Scheduler(redis_url, namespace=namespace)
    try:
        yield sched
    finally:
        try:
            # Only this run's keys: every key of a namespace starts with its prefix.
            for key in sched.client.scan_iter(match=sched.keys.prefix + "*", count=1000):
                sched.client.unlink(key)
        except Exception:  # cleanup is best effort and must not hide the real error
            pass
        sched.client.close()


@contextmanager
def _running(sched: luasched.Scheduler, n_processors: int) -> Iterator[list[luasched.Processor]]:
    """A scheduler loop thread and ``n_processors`` started processors; all stopped on exit."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            sched.run(stop)
        except luasched.LuaschedError as exc:  # reported by the main thread, not as a traceback
            errors.append(exc)

    thread = threading.Thread(target=loop, name="luasched-demo-scheduler")
    thread.start()
    processors: list[luasched.Processor] = []
    try:
        for i in range(n_processors):
            p = sched.processor(capacity=1, name=f"p{i + 1}")
            p.start()
            processors.append(p)
        yield processors
    finally:
        for p in processors:
            p.stop(timeout=STOP_TIMEOUT_S)
        stop.set()
        try:
            sched.wake()  # the loop may be blocked waiting for work: let it see the stop now
        finally:
            thread.join()
    if errors:
        raise errors[0]


def _gather(console: Console, group: luasched.Group,
            timeout_s: float) -> tuple[list[int], dict[str, int], int]:
    """Print each result as it arrives, under a progress bar.
    Returns (values, tasks per processor, how many failed)."""
    values: list[int] = []
    per_processor: Counter[str] = Counter()
    failures = 0
    columns = (TextColumn("tasks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("tasks", total=len(group))
        for outcome in group.as_completed(timeout=timeout_s):
            per_processor[outcome.processor] += 1
            try:
                value = outcome.value()
            except luasched.TaskFailed as exc:
                failures += 1
                line = f"FAILED {exc.error_type}: {exc.message}"
            except luasched.TaskCancelled:
                failures += 1
                line = "cancelled"
            else:
                values.append(value)
                line = f"-> {value}"
            progress.console.print(f"{escape(outcome.processor)}  task {escape(outcome.task_id)}  "
                                   f"{escape(line)}", soft_wrap=True)
            progress.advance(bar)
    return values, dict(per_processor), failures


def _summarise(console: Console, summed: dict[str, object], per_processor: dict[str, int],
               wall_s: float, sequential_s: float) -> None:
    table = Table(title="tasks per processor")
    table.add_column("processor")
    table.add_column("tasks", justify="right")
    for processor_id, count in sorted(per_processor.items()):
        table.add_row(escape(processor_id), str(count))
    console.print(table)
    console.print(f"summarised on processor {escape(str(summed['processor']))} by a chord callback "
                  f"(group.then), once the last task ended", soft_wrap=True)
    console.print(f"count            {summed['count']}\n"
                  f"failed           {summed['failed']}\n"
                  f"sum              {summed['sum']}\n"
                  f"mean             {summed['mean']}\n"
                  f"wall time        {wall_s:.2f} s\n"
                  f"sequential time  {sequential_s:.2f} s (the tasks one after another)\n"
                  f"speed-up         {sequential_s / wall_s:.2f}x", soft_wrap=True)
