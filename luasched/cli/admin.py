"""The admin commands of ``luasched`` about a whole namespace: status, audit, purge, purge-finished,
health.

Each command parses its arguments, calls the public Scheduler API, and renders what comes back.
Exit codes: 0 done (or healthy), 1 it ran and the answer is "no" (a task failed, audit found a
problem, something is stale), 2 bad input (APP, arguments, options, URL, unreachable Redis).
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import luasched

from .. import metrics
from ..core.explain import no_processor_counts, unrunnable_names
from ..core.flows import AUDIT_SLICE
from ..core.options import MAX_LIMIT, seconds
from ..core.words import counted, duration
from .common import (
    EXIT_FAILED,
    AdminCommand,
    age_s,
    boundary,
    read_from,
    reads_option,
    scheduler_for,
    target_options,
    where,
)
from .policies import limit_json, limiter_line, scope_words

#: The counts() entries that are times or rates, not places: shown apart from the counts.
CLOCK_FIELDS = ("now_ms", "last_dispatch_ms", "done_last_minute", "failed_last_minute")

#: status reads this many processors at most (the default of Scheduler.processors).
STATUS_PROCESSORS = 1000

#: health looks at this many processors (the most the processors script returns in one call).
HEALTH_PROCESSORS = 10000

# --- status ------------------------------------------------------------------------------------


def status_report(sched: luasched.Scheduler) -> dict[str, Any]:
    """What ``status`` shows, as plain data. Times are the server's (counts()["now_ms"])."""
    # Processors first: "now" is then read after every heartbeat shown, so no age is negative.
    processors = sched.processors(STATUS_PROCESSORS)
    counts, queues = sched.counts_and_queues()
    snap = metrics.snapshot(sched)  # the oldest ages and the rates, as the metrics show them
    now_ms = counts["now_ms"]
    last_ms = counts["last_dispatch_ms"]
    complete = len(processors) < STATUS_PROCESSORS
    return {
        "namespace": sched.namespace,
        "now_ms": now_ms,
        "queues": queues,
        # per queue: how long its oldest queued task has been ready, s (0: empty)
        "oldest_age_s": {q: snap.oldest_age_s(q) for q in snap.queues},
        # tasks finished in the last minute, by outcome (10 s buckets)
        "per_minute": {"done": snap.values["done_last_minute"], "failed": snap.values["failed_last_minute"]},
        # per queue: waiting tasks no live processor can take (None: not known from the processors read)
        "no_processor": no_processor_counts(queues, processors, now_ms, complete),
        # per queue served: task names submitted to it that no live processor serving it has
        "unrunnable_names": unrunnable_names(sched.task_names(queues), processors, now_ms, complete),
        "processors": [
            {"id": p.id, "name": p.name, "load": p.load, "capacity": p.capacity, "pending": p.pending,
             "running": p.running, "stuck": p.stuck, "queues": list(p.queues), "labels": p.labels,
             "longest_running_s": None if p.oldest_started_ms is None else age_s(now_ms, p.oldest_started_ms),
             "default_timeout_s": None if p.default_timeout_ms is None else p.default_timeout_ms / 1000,
             "heartbeat_age_s": age_s(now_ms, p.last_heartbeat_ms),
             "lease_left_s": (p.lease_deadline_ms - now_ms) / 1000,
             "lapsed": p.lease_deadline_ms < now_ms}
            for p in processors
        ],
        "counts": {k: v for k, v in counts.items() if k not in CLOCK_FIELDS},
        "last_dispatch_ms": last_ms or None,
        "last_dispatch_age_s": age_s(now_ms, last_ms) if last_ms else None,
        "done_last_minute": counts["done_last_minute"],
        "failed_last_minute": counts["failed_last_minute"],
        "maxmemory_policy": sched.eviction_policy(),
        "paused": [{"queue": x.queue, "key": x.key, "since_ms": x.since_ms, "age_s": age_s(now_ms, x.since_ms)}
                   for x in sched.paused()],
        "limiters": [limit_json(x) for x in sched.limits()],
    }


def pause_words(paused: list[dict[str, Any]]) -> str:
    """The pauses in force, for the status lines: "nothing", or "queue a (3.0 s), ..."."""
    return ", ".join(f"{scope_words(x['queue'], x.get('key'))} ({duration(x['age_s'])})"
                     for x in paused) or "nothing"


def eviction_words(policy: str | None) -> str:
    """What a maxmemory-policy means for luasched, in a few words."""
    if policy is None:
        return "unknown (INFO is not allowed here); luasched needs noeviction"
    if policy == "noeviction":
        return "noeviction"
    return f"{policy}: Redis may delete tasks under memory pressure; set noeviction"


def load_words(p: dict[str, Any]) -> str:
    """A processor's load for the status table: "2/4", or "3/4, 1 stuck"."""
    load = f"{p['load']}/{p['capacity']}"
    return f"{load}, {p['stuck']} stuck" if p["stuck"] else load


def render_status(console: Console, report: dict[str, Any]) -> None:
    read_from = f", read from replica {report['read_from']}" if report.get("read_from") else ""
    console.print(f"luasched status: namespace {escape(report['namespace'])}{escape(read_from)}", soft_wrap=True)
    if report["queues"]:
        queues = Table(title="queues")
        queues.add_column("queue")
        queues.add_column("depth", justify="right")
        queues.add_column("oldest", justify="right")
        queues.add_column("no processor", justify="right")
        unserved = report.get("no_processor", {})
        for name, depth in report["queues"].items():
            n = unserved.get(name)
            oldest = report["oldest_age_s"].get(name)
            queues.add_row(escape(name), str(depth), "-" if not depth or oldest is None else duration(oldest),
                           "?" if n is None else str(n))
        console.print(queues)
        for name, missing in report.get("unrunnable_names", {}).items():
            if missing:
                console.print(f"queue {escape(name)}: no live processor serving it has task "
                              f"{escape(', '.join(missing))}; such tasks wait (luasched explain APP ID)",
                              soft_wrap=True)
    else:
        console.print("queues: none used yet")
    if report["processors"]:
        procs = Table(title="processors")
        right = ("load", "longest running", "heartbeat", "lease")
        for column in ("id", "name", "load", "longest running", "queues, labels", "heartbeat", "lease"):
            procs.add_column(column, justify="right" if column in right else "left",
                             no_wrap=column != "queues, labels")
        for p in report["processors"]:
            lease = (f"lapsed {-p['lease_left_s']:.1f} s ago" if p["lapsed"]
                     else f"{p['lease_left_s']:.1f} s left")
            longest = "-" if p["longest_running_s"] is None else duration(p["longest_running_s"])
            serves = ",".join(p["queues"]) + "".join(f" {k}={v}" for k, v in p["labels"].items())
            procs.add_row(escape(p["id"]), escape(p["name"]), load_words(p), longest,
                          escape(serves), f"{p['heartbeat_age_s']:.1f} s ago", lease)
        console.print(procs)
        stuck = [p for p in report["processors"] if p["stuck"]]
        if stuck:
            console.print(f"stuck             {counted(sum(p['stuck'] for p in stuck), 'slot')} still in a "
                          "call that ran past its timeout: not offered work until it returns", soft_wrap=True)
    else:
        console.print("processors: none registered")
    counts = Table(title="counts")
    counts.add_column("of")
    counts.add_column("n", justify="right")
    for name, value in report["counts"].items():
        counts.add_row(name.replace("_", " "), str(value))
    console.print(counts)
    age = report["last_dispatch_age_s"]
    console.print(f"last dispatch     {'never' if age is None else f'{age:.1f} s ago'}\n"
                  f"last minute       {report['per_minute']['done']} done, "
                  f"{report['per_minute']['failed']} failed\n"
                  f"eviction          {escape(eviction_words(report['maxmemory_policy']))}\n"
                  f"paused            {escape(pause_words(report['paused']))}", soft_wrap=True)
    limiters = report["limiters"]
    console.print(f"limiters          {len(limiters) or 'none'}", soft_wrap=True)
    for x in limiters:
        console.print(f"  {escape(limiter_line(x))}", soft_wrap=True, highlight=False)


@click.command("status", cls=AdminCommand)
@click.argument("app", required=False)
@target_options
@reads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def status_command(app: str | None, redis_url: str | None, namespace: str | None,
                   read_urls: tuple[str, ...], as_json: bool) -> None:
    """Queues (depth, oldest queued task's age), processors, counts, the last dispatch, the tasks
    finished in the last minute (the same snapshot as ``luasched metrics``), the
    pauses and the limiters (a line each: its tasks running against its max_running, the lanes it
    holds back, its rate).

    APP (module:attribute naming a Scheduler), or --redis URL --namespace NS. With --read-redis
    every figure is read from the replica (and says so)."""
    with boundary("status", redis_url, *read_urls), scheduler_for(app, redis_url, namespace, read_urls) as sched:
        report = status_report(sched)
    if read_urls:
        report["read_from"] = read_from(read_urls)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        render_status(Console(), report)


# --- audit -------------------------------------------------------------------------------------


@click.command("audit", cls=AdminCommand)
@click.argument("app", required=False)
@target_options
@reads_option
@click.option("--slice-size", type=click.IntRange(1, MAX_LIMIT), default=AUDIT_SLICE, show_default=True,
              help="Queued, delayed or failed tasks read per call.")
@click.pass_context
def audit_command(ctx: click.Context, app: str | None, redis_url: str | None, namespace: str | None,
                  read_urls: tuple[str, ...], slice_size: int) -> None:
    """Check the conservation invariant: print "ok" (exit 0), or each problem (exit 1).

    Read-only, in bounded calls: a snapshot of the counters and the processors, then the queued,
    delayed and failed tasks --slice-size at a time (a few ms of Redis each), so Redis
    keeps serving everyone meanwhile. With --read-redis it runs on the replica (as stale as the
    replica; stderr says which server was read), leaving the primary alone."""
    with boundary("audit", redis_url, *read_urls), scheduler_for(app, redis_url, namespace, read_urls) as sched:
        audit = sched.audit(slice_size=slice_size)
    if read_urls:
        click.echo(f"luasched audit: read from replica {read_from(read_urls)}", err=True)
    if audit.ok:
        click.echo("ok")
        return
    for problem in audit.problems:
        click.echo(problem)
    ctx.exit(EXIT_FAILED)


# --- purge -------------------------------------------------------------------------------------


@click.command("purge", cls=AdminCommand)
@click.argument("app", required=False)
@target_options
@click.option("--yes", is_flag=True, help="Really delete (required).")
def purge_command(app: str | None, redis_url: str | None, namespace: str | None, yes: bool) -> None:
    """Delete every key of the namespace: tasks, queues, processors, results, dead letters."""
    with boundary("purge", redis_url), scheduler_for(app, redis_url, namespace) as sched:
        if not yes:
            raise ValueError(f"purge deletes every key of {where(sched, redis_url)}; "
                             f"add --yes to go ahead")
        deleted = sched.purge()
        click.echo(f"deleted {counted(deleted, 'key')} of {where(sched, redis_url)}")


@click.command("purge-finished", cls=AdminCommand)
@click.argument("app", required=False)
@target_options
@click.option("--older-than", "older_than", type=float, default=0.0, metavar="SECONDS",
              help="Only dead letters that failed at least this long ago (default 0: all of them).")
@click.option("--limit", type=int, default=None, help="At most N, the oldest first (default: all).")
@click.option("--yes", is_flag=True, help="Really delete (required).")
def purge_finished_command(app: str | None, redis_url: str | None, namespace: str | None, older_than: float,
                           limit: int | None, yes: bool) -> None:
    """Delete the dead letters (tasks that ended failed: see ``failed``), their records and errors,
    the oldest first. Members of a group that has not finished stay (what waits for the group
    reads them). Done and cancelled tasks need no purge: they leave by themselves after keep."""
    with boundary("purge-finished", redis_url), scheduler_for(app, redis_url, namespace) as sched:
        seconds(older_than, "--older-than")
        if not yes:
            which = f"failed {older_than:g} s ago or more" if older_than else "all of them"
            raise ValueError(f"purge-finished deletes the dead letters ({which}) of {where(sched, redis_url)}; "
                             f"add --yes to go ahead")
        deleted = sched.purge_finished(older_than=older_than, limit=limit)
        click.echo(f"deleted {counted(deleted, 'dead letter')} of {where(sched, redis_url)}")


# --- health ------------------------------------------------------------------------------------


def health_check(sched: luasched.Scheduler, window_s: float, *, dispatch: bool = True,
                 heartbeat: bool = True, eviction: bool = False) -> tuple[list[str], list[str]]:
    """(what is stale, what is fine), judged on the server's clock. A maxmemory-policy that
    evicts is a failure unless ``eviction`` allows it; a pause is said among what is fine (it is
    deliberate: a container restarted for it would change nothing)."""
    processors = sched.processors(HEALTH_PROCESSORS) if heartbeat else []
    counts = sched.counts()
    now_ms = counts["now_ms"]
    stale: list[str] = []
    fine: list[str] = []
    policy = sched.eviction_policy()
    if policy not in (None, "noeviction") and not eviction:
        stale.append(f"maxmemory-policy {policy}: Redis may delete tasks (--allow-eviction to accept it)")
    if dispatch:
        last_ms = counts["last_dispatch_ms"]
        if not last_ms:
            stale.append("no dispatch ever")
        elif age_s(now_ms, last_ms) > window_s:
            stale.append(f"no dispatch within {window_s:g} s (last {age_s(now_ms, last_ms):.1f} s ago)")
        else:
            fine.append(f"last dispatch {age_s(now_ms, last_ms):.1f} s ago")
    if heartbeat:
        if not processors:
            stale.append("no processor registered")
        else:
            latest = min(age_s(now_ms, p.last_heartbeat_ms) for p in processors)
            live = sum(age_s(now_ms, p.last_heartbeat_ms) <= window_s for p in processors)
            if not live:
                stale.append(f"no processor heartbeat within {window_s:g} s "
                             f"({len(processors)} registered, latest {latest:.1f} s ago)")
            else:
                fine.append(f"{live} of {counted(len(processors), 'processor')} heartbeated within {window_s:g} s "
                            f"(latest {latest:.1f} s ago)")
    paused = sched.paused()
    if paused:  # deliberate, so not stale; but said, since nothing of it runs meanwhile
        fine.append("paused: " + pause_words([{"queue": x.queue, "key": x.key, "age_s": age_s(now_ms, x.since_ms)}
                                                for x in paused]))
    return stale, fine


@click.command("health", cls=AdminCommand)
@click.argument("app", required=False)
@target_options
@click.option("--window", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              metavar="S", help="How recent a dispatch and a heartbeat must be, in seconds.")
@click.option("--no-dispatch-check", is_flag=True,
              help="Do not require a recent dispatch (deployments with no scheduler process).")
@click.option("--no-heartbeat-check", is_flag=True, help="Do not require a recent processor heartbeat.")
@click.option("--allow-eviction", is_flag=True,
              help="Accept a maxmemory-policy other than noeviction (Redis may then delete tasks).")
@click.pass_context
def health_command(ctx: click.Context, app: str | None, redis_url: str | None, namespace: str | None,
                   window: float, no_dispatch_check: bool, no_heartbeat_check: bool, allow_eviction: bool) -> None:
    """For container health checks: exit 0 when a dispatch happened and a processor heartbeated
    within --window seconds (server time), and Redis does not evict keys; else exit 1 with one
    line saying what is stale."""
    with boundary("health", redis_url), scheduler_for(app, redis_url, namespace) as sched:
        stale, fine = health_check(sched, window, dispatch=not no_dispatch_check,
                                   heartbeat=not no_heartbeat_check, eviction=allow_eviction)
    if stale:
        click.echo(f"stale: {'; '.join(stale)}")
        ctx.exit(EXIT_FAILED)
    click.echo(f"ok: {'; '.join(fine) or 'Redis answers'}")
