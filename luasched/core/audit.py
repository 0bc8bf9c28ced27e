"""The conservation invariant, checked on an audit's replies (pure: no I/O): every task in
exactly one place, inboxes matching loads and idle rankings, counters adding up.

An audit reads the namespace in bounded calls (luasched/core/flows.py ``audit``): first the frame
(lua/audit.lua), one consistent snapshot of the counters, the sizes of the big places (queues, the
delayed set, the dead letters) and everything else in full; then the members of the big places in
slices (lua/audit_slice.lua), each slice with its records in one call. What needs one moment is
checked on one reply: the counters against the sizes (no task lost or counted twice), the
processors against their inboxes and rankings (in the frame), each queued, delayed or failed task
against its own record (in its slice). A task that sits in two big places at once shows as a
record that disagrees with one of them, or as a size the counters do not explain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .fields import PROCESSOR, STATS
from .kinds import check_kinds, check_routing_flags
from .lanes import check_lanes, held_counts, lane_name, lane_parts, pause_scope_ok
from .ops import fields_of, text
from .options import is_queue_name
from .pauses import WHOLE_NAMESPACE
from .unique import check_index, check_row
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
PLACES = ("waiting", "queued", "delayed", "assigned", "running", "done", "failed", "cancelled")
#: The states of a task that has not started: those the deadline index (``expires``) holds.
WAITING = ("waiting", "queued", "delayed", "assigned")
#: The state a task's record must hold in each big place.
STATE_IN = {"queue": "queued", "lane": "queued", "waiting": "waiting", "delayed": "delayed", "failed": "failed"}
#: An audit of a badly broken namespace reports this many problems, then how many more it found.
MAX_PROBLEMS = 1000


class AuditCheck:
    """The invariant checked on an audit's frame (at construction), then on each slice as it
    comes (``add_slice``); ``result()`` says what was found. Holds only the frame and the problems,
    never the members of the big places, so an audit of a million tasks stays small."""

    def __init__(self, frame: Any) -> None:
        self._problems: list[str] = []
        self._more = 0
        self.counts: dict[str, int] = {}
        frame = text(frame)
        (now_s, stats_flat, queues, delayed_n, running_flat, failed_n, procs, idles, idle, held,
         cards_flat, pauses_flat, lanes, blocked_flat, counts_flat, limiters_flat, patterns, qd_flat,
         delayed_by_queue, deadlines, kinds_flat, kindn_flat, queue_kinds, kind_names) = frame[:24]
        waiting_n = frame[24] if len(frame) > 24 else 0  # a frame before waiting tasks: none
        unique_n, uniques = frame[25] if len(frame) > 25 else (0, [])  # a frame before unique keys: none
        #: (place, queue or lane, size) of each big place, in the order the slices read them
        self.places: list[tuple[str, str, int]] = [("queue", q, int(n)) for q, n in queues]
        self.places += check_lanes(self.problem, lanes, blocked_flat, counts_flat, limiters_flat, patterns,
                                   held_counts(held))
        self.places += [("waiting", "", int(waiting_n)), ("delayed", "", int(delayed_n)), ("failed", "", int(failed_n))]
        self._check_frame(int(now_s), {k: int(v) for k, v in fields_of(stats_flat).items()}, procs,
                          fields_of(running_flat), idles, idle, held, fields_of(cards_flat))
        self._check_pauses(fields_of(pauses_flat))
        records = {pid: fields_of(flat) for pid, _, flat, _, _ in procs}
        check_kinds(self.problem, {pid: (rec.get(PROCESSOR.kind, ""), rec.get(PROCESSOR.queues, ""))
                                   for pid, rec in records.items() if rec},
                    fields_of(kinds_flat), fields_of(kindn_flat), {q: fields_of(flat) for q, flat, _, _ in queue_kinds},
                    {k: set(names) for k, names in kind_names})
        check_routing_flags(self.problem, [(q, fields_of(flat), set(qn), int(flag))
                                           for q, flat, qn, flag in queue_kinds],
                            {k: set(names) for k, names in kind_names})
        self._check_delayed_counts(int(delayed_n), fields_of(qd_flat), fields_of(delayed_by_queue))
        for task_id, score, s, dx in deadlines:
            if s not in WAITING:
                self.problem(f"task {task_id} is in the deadline index but is {s or 'gone'}")
            elif not dx or float(dx) != float(score):
                self.problem(f"task {task_id} is in the deadline index at {score}, its record says {dx or 'none'}")
        check_index(self.problem, int(unique_n), uniques)

    def problem(self, what: str) -> None:
        if len(self._problems) < MAX_PROBLEMS:
            self._problems.append(what)
        else:
            self._more += 1

    def result(self) -> Audit:
        problems = list(self._problems)
        if self._more:
            problems.append(f"... and {self._more} more problems")
        return Audit(not problems, problems, dict(self.counts))

    def add_slice(self, place: str, queue: str, rows: Sequence[Any]) -> None:
        """Check one slice of a big place: each task's record against the place it was read in."""
        label = f"{place} {queue}" if place in ("queue", "lane") else place
        lane = lane_name(queue) if place == "queue" else queue
        seen: set[str] = set()
        for row in text(rows):
            if place == "waiting":  # and what the task counts as not ended, against what is not
                row, (counted_left, left) = row[:-2], row[-2:]
                if row[1] == "waiting" and counted_left != left:
                    self.problem(f"task {row[0]} counts {counted_left or 'no'} tasks and groups it waits for as "
                                 f"not finished; {left} are not")
            task_id, s, q, _p, n, m, in_lane, held, *unique = row
            if task_id in seen:
                self.problem(f"task {task_id} is in {label} twice")
                continue
            seen.add(task_id)
            if not s:
                self.problem(f"task {task_id} is in {label} but has no record")
                continue
            if s != STATE_IN[place]:
                self.problem(f"task {task_id} is in {label} but its record says {s}")
            elif place in ("queue", "lane") and (q != lane_parts(lane)[0] or in_lane != lane):
                self.problem(f"task {task_id} is in {label} but belongs to lane {in_lane!r} of queue {q}")
            if held:
                self.problem(f"task {task_id} is in {label} but holds running counts of {held}")
            if unique:
                check_row(self.problem, task_id, s, *unique)
            self._attempts(task_id, n, m)

    def _check_pauses(self, pauses: dict[str, str]) -> None:
        """Each pause names the whole namespace (``*``), a queue (``q:<name>``) or a key (in every
        queue or in one: lib/lanes), since a time."""
        for scope, since in pauses.items():
            queue = scope[2:] if scope.startswith("q:") else None
            if scope != WHOLE_NAMESPACE and not (queue and is_queue_name(queue)) and not pause_scope_ok(scope):
                self.problem(f"pause {scope!r} names neither the namespace nor a queue nor a key")
            if not since.isdigit():
                self.problem(f"pause {scope!r} has no time it began ({since!r})")

    def _check_delayed_counts(self, delayed_n: int, qd: dict[str, str], counted_here: dict[str, str]) -> None:
        """qd (each queue's delayed tasks, which submit reads for max_pending) adds up to the
        delayed set, holds no empty field, and where the frame counted the delayed tasks' queues
        (a bounded number of them) matches them queue by queue."""
        counts = {q: int(n) for q, n in qd.items()}
        for q, n in counts.items():
            if n <= 0:
                self.problem(f"queue {q} counts {n} delayed tasks (a field that should be gone)")
        if sum(counts.values()) != delayed_n:
            self.problem(f"the queues count {sum(counts.values())} delayed tasks, the delayed set holds {delayed_n}")
        elif counted_here:
            for q in sorted(set(counts) | set(counted_here)):
                want = int(counted_here.get(q, 0))
                if counts.get(q, 0) != want:
                    self.problem(f"queue {q} counts {counts.get(q, 0)} delayed tasks, the delayed set holds {want}")

    def _attempts(self, task_id: str, n: str, m: str) -> None:
        if n and m and int(n) > int(m):
            self.problem(f"task {task_id} used {n} attempts of {m}")

    def _check_frame(self, now: int, stats: dict[str, int], procs: Any, running: dict[str, str], idles: Any,
                     idle: Any, held: Any, cards: dict[str, str]) -> None:
        problem = self.problem
        where: dict[str, list[str]] = {}
        in_running_sets: set[str] = set()
        pending_total = 0
        lapsed: set[str] = set()
        loads: dict[str, tuple[int, int, list[str]]] = {}
        kinds: dict[str, str] = {}  # processor -> the kind its record says ('': none)
        for pid, deadline, rec_flat, pending, started in procs:
            rec = fields_of(rec_flat)
            card = cards.pop(pid, None)  # none: the record predates cards (dispatch then reads it)
            if float(deadline) < now:
                lapsed.add(pid)
            if not rec:
                problem(f"processor {pid} is registered but has no record")
                continue
            kinds[pid] = rec.get(PROCESSOR.kind, "")
            cap_s, dl, qs = rec.get(PROCESSOR.capacity), rec.get(PROCESSOR.deadline_ms), rec.get(PROCESSOR.queues)
            if dl is not None and float(dl) != float(deadline):
                problem(f"processor {pid}'s record says its lease ends at {dl}, the registry {deadline}")
            if card is not None and card != f"{cap_s} {dl} {qs}":
                problem(f"processor {pid}'s card {card!r} is out of step with its record "
                        f"({PROCESSOR.capacity} {cap_s}, {PROCESSOR.deadline_ms} {dl}, {PROCESSOR.queues} {qs})")
            for t in pending:
                where.setdefault(t, []).append(f"inbox {pid} (pending)")
            for t in started:
                where.setdefault(t, []).append(f"inbox {pid} (running)")
                in_running_sets.add(t)
            pending_total += len(pending)
            # a slot still in the call of an attempt that reap ended stays taken (lua/reap.lua)
            stuck = int(rec.get(PROCESSOR.stuck) or 0)
            calls = sum(name.startswith(PROCESSOR.reaped_call) for name in rec)
            if stuck != calls:
                problem(f"processor {pid} counts {counted(stuck, 'stuck slot')} but holds "
                        f"{counted(calls, 'reaped call')}")
            load, cap = len(pending) + len(started) + stuck, int(rec[PROCESSOR.capacity])
            loads[pid] = (load, cap, rec[PROCESSOR.queues].split(","))
            if load > cap:
                problem(f"processor {pid} holds {counted(load, 'task')}, over its capacity {cap}")
        for t in running:
            if t not in in_running_sets:
                problem(f"task {t} is in the running zset but in no processor's running set")
        for t in in_running_sets - set(running):
            problem(f"task {t} runs on a processor but is missing from the running zset")
        for t, places in where.items():
            if len(places) > 1:
                problem(f"task {t} is in {len(places)} places: {', '.join(places)}")

        for task_id, s, _q, p, n, m, _lane, _held, *unique in held:
            if unique:
                check_row(problem, task_id, s, *unique)
            places = where.get(task_id, [])
            if not s:
                problem(f"task {task_id} is in {places[0] if places else 'the running zset'} but has no record")
                continue
            if places:
                place = places[0]
                owner = place.split(" ")[1]
                want = "running" if place.endswith("(running)") else "assigned"
                if s != want or p != owner:
                    problem(f"task {task_id} is in {place} but its record says {s} on {p or 'none'}")
            self._attempts(task_id, n, m)

        idle_members = set(idle)
        idle_by_queue: dict[str, set[str]] = {}
        for q, ranked in idles:
            for kind, flat in ranked:
                for i in range(0, len(flat), 2):
                    idle_by_queue.setdefault(q, set()).add(flat[i])
                    if flat[i] in kinds and kinds[flat[i]] != kind:
                        problem(f"processor {flat[i]} is ranked idle for queue {q} as kind {kind}, "
                                f"its record says {kinds[flat[i]] or 'none'}")
        for q, flat in ((q, [x for _, f in ranked for x in f]) for q, ranked in idles):
            for i in range(0, len(flat), 2):
                pid, score = flat[i], int(float(flat[i + 1]))
                if pid not in loads:
                    problem(f"processor {pid} is idle for queue {q} but is not registered")
                    continue
                load, cap, served = loads[pid]
                if q not in served:
                    problem(f"processor {pid} is idle for queue {q} but does not serve it")
                if score // TWO40 != load:
                    problem(f"processor {pid} is ranked with load {score // TWO40} for {q}, holds {load}")
                if load >= cap:
                    problem(f"processor {pid} is idle for {q} but full ({load}/{cap})")
        for pid, (load, cap, served) in loads.items():
            if pid in lapsed:
                continue
            for q in served:
                if (load < cap) != (pid in idle_by_queue.get(q, set())):
                    problem(f"processor {pid} ({load}/{cap}) is {'not ' if load < cap else ''}"
                            f"ranked idle for queue {q}")
            if (load < cap) != (pid in idle_members):
                problem(f"processor {pid} ({load}/{cap}) has the wrong idle-set membership")
        for pid in idle_members - set(loads):
            problem(f"processor {pid} is in the idle set but not registered")
        for pid in sorted(cards):  # what is left: cards of no registered processor
            problem(f"processor {pid} has a card but is not registered")

        sizes = {place: 0 for place in STATE_IN}
        for place, _q, n in self.places:
            sizes[place] += n
        c = {
            "submitted": stats.get(STATS.submitted, 0),
            "waiting": sizes["waiting"],
            "queued": sizes["queue"] + sizes["lane"],
            "delayed": sizes["delayed"],
            "assigned": pending_total,
            "running": len(running),
            "done": stats.get(STATS.done, 0),
            "failed": sizes["failed"],
            "cancelled": stats.get(STATS.cancelled, 0),
            "purged": stats.get(STATS.purged, 0),  # dead letters deleted: in no place any more
            "processors": len(procs),
            "idle_processors": len(idle_members),
        }
        self.counts = c
        assigned, failed_n = stats.get(STATS.assigned, 0), stats.get(STATS.failed, 0)
        if assigned != pending_total:
            problem(f"counter assigned is {assigned}, inboxes hold {pending_total} pending")
        if failed_n != c["failed"]:
            problem(f"counter failed is {failed_n}, the dead letters hold {c['failed']}")
        placed = sum(c[k] for k in PLACES) + c["purged"]
        if placed != c["submitted"]:
            detail = ", ".join(f"{k} {c[k]}" for k in (*PLACES, "purged"))
            submitted = f"{counted(c['submitted'], 'task')} {'was' if c['submitted'] == 1 else 'were'} submitted"
            problem(f"{submitted} but {placed} are accounted for ({detail})")


def check_audit(frame: Any, slices: Sequence[tuple[str, str, Sequence[Any]]] = ()) -> Audit:
    """Check the invariant on an audit's frame and its slices, each (place, queue, rows): a pure
    function, for replies already read."""
    check = AuditCheck(frame)
    for place, queue, rows in slices:
        check.add_slice(place, queue, rows)
    return check.result()
