"""The conservation invariant, checked on one audit snapshot (a pure function of the reply of
lua/audit.lua): every task in exactly one place, inboxes matching loads and idle rankings,
counters adding up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .fields import PROCESSOR, STATS
from .ops import fields_of, text
from .words import counted


@dataclass
class Audit:
    """What audit found: ``ok`` when the invariant holds, else ``problems`` says what is wrong."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.ok


TWO40 = 1 << 40
PLACES = ("queued", "delayed", "assigned", "running", "done", "failed", "cancelled")


def check_audit(reply: Any) -> Audit:
    """Check the conservation invariant on one audit snapshot (a pure function)."""
    now_s, stats_flat, queues, delayed, running_flat, failed, procs, idles, idle, records, cards_flat = text(reply)
    cards = fields_of(cards_flat)
    now = int(now_s)
    stats = {k: int(v) for k, v in fields_of(stats_flat).items()}
    problems: list[str] = []
    where: dict[str, list[str]] = {}

    def put(task_id: str, place: str) -> None:
        where.setdefault(task_id, []).append(place)

    for q, ids in queues:
        for t in ids:
            put(t, f"queue {q}")
    for t in delayed:
        put(t, "delayed")
    for t in failed:
        put(t, "failed")
    running = fields_of(running_flat)
    in_running_sets: set[str] = set()
    pending_total = 0
    lapsed: set[str] = set()
    loads: dict[str, tuple[int, int, list[str]]] = {}
    for pid, deadline, rec_flat, pending, started in procs:
        rec = fields_of(rec_flat)
        card = cards.pop(pid, None)  # none: the record predates cards (dispatch then reads it)
        if float(deadline) < now:
            lapsed.add(pid)
        if not rec:
            problems.append(f"processor {pid} is registered but has no record")
            continue
        cap_s, dl, qs = rec.get(PROCESSOR.capacity), rec.get(PROCESSOR.deadline_ms), rec.get(PROCESSOR.queues)
        if dl is not None and float(dl) != float(deadline):
            problems.append(f"processor {pid}'s record says its lease ends at {dl}, the registry {deadline}")
        if card is not None and card != f"{cap_s} {dl} {qs}":
            problems.append(f"processor {pid}'s card {card!r} is out of step with its record "
                            f"({PROCESSOR.capacity} {cap_s}, {PROCESSOR.deadline_ms} {dl}, {PROCESSOR.queues} {qs})")
        for t in pending:
            put(t, f"inbox {pid} (pending)")
        for t in started:
            put(t, f"inbox {pid} (running)")
            in_running_sets.add(t)
        pending_total += len(pending)
        # a slot still in the call of an attempt that reap ended stays taken (lua/reap.lua)
        stuck = int(rec.get(PROCESSOR.stuck) or 0)
        calls = sum(name.startswith(PROCESSOR.reaped_call) for name in rec)
        if stuck != calls:
            problems.append(f"processor {pid} counts {counted(stuck, 'stuck slot')} but holds "
                            f"{counted(calls, 'reaped call')}")
        load, cap = len(pending) + len(started) + stuck, int(rec[PROCESSOR.capacity])
        loads[pid] = (load, cap, rec[PROCESSOR.queues].split(","))
        if load > cap:
            problems.append(f"processor {pid} holds {counted(load, 'task')}, over its capacity {cap}")
    for t in running:
        if t not in in_running_sets:
            problems.append(f"task {t} is in the running zset but in no processor's running set")
    for t in in_running_sets - set(running):
        problems.append(f"task {t} runs on a processor but is missing from the running zset")

    for t, places in where.items():
        if len(places) > 1:
            problems.append(f"task {t} is in {len(places)} places: {', '.join(places)}")

    expect_state = {"queue": "queued", "delayed": "delayed", "failed": "failed"}
    for task_id, s, q, p, n, m in records:
        places = where.get(task_id, [])
        if not s:
            problems.append(f"task {task_id} is in {places[0] if places else '?'} but has no record")
            continue
        if not places:
            continue
        place = places[0]
        kind = place.split(" ")[0]
        if kind == "inbox":
            owner = place.split(" ")[1]
            want = "running" if place.endswith("(running)") else "assigned"
            if s != want or p != owner:
                problems.append(f"task {task_id} is in {place} but its record says {s} on {p or 'none'}")
        elif s != expect_state[kind]:
            problems.append(f"task {task_id} is in {place} but its record says {s}")
        elif kind == "queue" and place != f"queue {q}":
            problems.append(f"task {task_id} is in {place} but belongs to queue {q}")
        if n and m and int(n) > int(m):
            problems.append(f"task {task_id} used {n} attempts of {m}")

    idle_members = set(idle)
    for q, flat in idles:
        for i in range(0, len(flat), 2):
            pid, score = flat[i], int(float(flat[i + 1]))
            if pid not in loads:
                problems.append(f"processor {pid} is idle for queue {q} but is not registered")
                continue
            load, cap, served = loads[pid]
            if q not in served:
                problems.append(f"processor {pid} is idle for queue {q} but does not serve it")
            if score // TWO40 != load:
                problems.append(f"processor {pid} is ranked with load {score // TWO40} for {q}, holds {load}")
            if load >= cap:
                problems.append(f"processor {pid} is idle for {q} but full ({load}/{cap})")
    idle_by_queue = {q: {flat[i] for i in range(0, len(flat), 2)} for q, flat in idles}
    for pid, (load, cap, served) in loads.items():
        if pid in lapsed:
            continue
        for q in served:
            if (load < cap) != (pid in idle_by_queue.get(q, set())):
                problems.append(f"processor {pid} ({load}/{cap}) is {'not ' if load < cap else ''}"
                                f"ranked idle for queue {q}")
        if (load < cap) != (pid in idle_members):
            problems.append(f"processor {pid} ({load}/{cap}) has the wrong idle-set membership")
    for pid in idle_members - set(loads):
        problems.append(f"processor {pid} is in the idle set but not registered")
    for pid in sorted(cards):  # what is left: cards of no registered processor
        problems.append(f"processor {pid} has a card but is not registered")

    queued = sum(len(ids) for _, ids in queues)
    c = {
        "submitted": stats.get(STATS.submitted, 0),
        "queued": queued,
        "delayed": len(delayed),
        "assigned": pending_total,
        "running": len(running),
        "done": stats.get(STATS.done, 0),
        "failed": len(failed),
        "cancelled": stats.get(STATS.cancelled, 0),
        "processors": len(procs),
        "idle_processors": len(idle_members),
    }
    assigned, failed_n = stats.get(STATS.assigned, 0), stats.get(STATS.failed, 0)
    if assigned != pending_total:
        problems.append(f"counter assigned is {assigned}, inboxes hold {pending_total} pending")
    if failed_n != len(failed):
        problems.append(f"counter failed is {failed_n}, the dead letters hold {len(failed)}")
    placed = sum(c[k] for k in PLACES)
    if placed != c["submitted"]:
        detail = ", ".join(f"{k} {c[k]}" for k in PLACES)
        submitted = f"{counted(c['submitted'], 'task')} {'was' if c['submitted'] == 1 else 'were'} submitted"
        problems.append(f"{submitted} but {placed} are accounted for ({detail})")
    return Audit(not problems, problems, c)
