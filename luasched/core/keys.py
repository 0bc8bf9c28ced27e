"""The one place that spells luasched's Redis key names (lua/lib/*.lua build the same ones)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .options import check_namespace

#: Names of the fixed keys, in the order every script receives them as KEYS.
FIXED = ("stats", "delayed", "running", "failed", "queues", "procs", "idle", "wake", "cards")


@dataclass(frozen=True)
class Keys:
    """Key names of one namespace. All share the hash tag ``{namespace}``: one cluster slot."""

    namespace: str
    prefix: str = field(init=False)
    fixed: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        check_namespace(self.namespace)
        prefix = f"luasched:{{{self.namespace}}}:"
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "fixed", tuple(prefix + name for name in FIXED))

    @property
    def stats(self) -> str:
        return self.prefix + "stats"

    @property
    def delayed(self) -> str:
        return self.prefix + "delayed"

    @property
    def running(self) -> str:
        return self.prefix + "running"

    @property
    def failed(self) -> str:
        return self.prefix + "failed"

    @property
    def queues(self) -> str:
        return self.prefix + "queues"

    @property
    def procs(self) -> str:
        return self.prefix + "procs"

    @property
    def idle(self) -> str:
        return self.prefix + "idle"

    @property
    def wake(self) -> str:
        return self.prefix + "wake"

    @property
    def cards(self) -> str:
        """HASH processor id -> "capacity lease-deadline-ms queues": its record's c, dl and qs
        in one field, so that dispatch reads many processors in one HMGET."""
        return self.prefix + "cards"

    @property
    def paused(self) -> str:
        """HASH of what is paused: ``*`` (the whole namespace) or ``q:<queue>`` -> ms paused at."""
        return self.prefix + "paused"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}t:{task_id}"

    def task_wake(self, task_id: str) -> str:
        return f"{self.prefix}w:{task_id}"

    def queue(self, name: str) -> str:
        return f"{self.prefix}q:{name}"

    def idle_rank(self, kind: str, queue: str) -> str:
        """ZSET processor id -> load * 2^40 + seq: the idle ranking of ``queue`` for the
        processors of ``kind`` (core/kinds) with a free slot."""
        return f"{self.prefix}ik:{kind}:{queue}"

    def processor(self, pid: str) -> str:
        return f"{self.prefix}p:{pid}"

    def inbox(self, pid: str) -> str:
        """Pending part of the inbox: assigned, not started."""
        return f"{self.prefix}p:{pid}:i"

    def inbox_running(self, pid: str) -> str:
        """Started part of the inbox."""
        return f"{self.prefix}p:{pid}:r"

    def processor_wake(self, pid: str) -> str:
        return f"{self.prefix}p:{pid}:w"

    def rate(self, bucket: int) -> str:
        """Tasks finished in the 10 s bucket ``bucket`` (= ms // 10000), by state."""
        return f"{self.prefix}rate:{bucket}"

    def group(self, group_id: str) -> str:
        return f"{self.prefix}g:{group_id}"

    def group_ids(self, group_id: str) -> str:
        """The member ids of a group, in submission order."""
        return f"{self.prefix}gi:{group_id}"

    def group_stream(self, group_id: str) -> str:
        return f"{self.prefix}gs:{group_id}"

    def lanes(self, queue: str) -> str:
        """The non-empty lanes of a queue that uses a policy (lua/lib/lanes.lua)."""
        return f"{self.prefix}lanes:{queue}"

    def lane(self, name: str) -> str:
        """A lane's task ids, head first (not the plain lane: that is ``queue(name)``)."""
        return f"{self.prefix}ln:{name}"

    @property
    def virtual_times(self) -> str:
        """HASH '<priority>:<queue>' -> that level's virtual time (the tag of the lane last served)."""
        return self.prefix + "vt"

    @property
    def limiter_counts(self) -> str:
        """HASH limiter name -> attempts holding a running count of it."""
        return self.prefix + "lr"

    @property
    def queue_caps(self) -> str:
        """HASH queue -> max_pending (``Scheduler.set_queue``; absent: no cap)."""
        return self.prefix + "qmax"

    @property
    def kinds(self) -> str:
        """HASH kind -> its definition: the task names and labels of its processors (core/kinds)."""
        return self.prefix + "kinds"

    @property
    def kind_counts(self) -> str:
        """HASH kind -> how many registered processors are of it (field gone at 0)."""
        return self.prefix + "kindn"

    def kind_names(self, kind: str) -> str:
        """SET of the task names the processors of ``kind`` run (placement asks it; '' alone:
        they know no task, and take any)."""
        return self.prefix + "kn:" + kind

    def queue_names(self, queue: str) -> str:
        """SET of the task names ever submitted to ``queue`` (submit adds to it)."""
        return self.prefix + "qn:" + queue

    @property
    def routed(self) -> str:
        """HASH queue -> '1' while some kind serving it lacks a task name submitted to it: its
        placement then reads each task's name (lib/routing route_flag)."""
        return self.prefix + "qr"

    def queue_kinds(self, queue: str) -> str:
        """HASH kind -> how many registered processors of it serve ``queue`` (field gone at 0)."""
        return self.prefix + "qk:" + queue

    @property
    def delayed_counts(self) -> str:
        """HASH queue -> how many of its tasks wait in ``delayed`` (field gone at 0)."""
        return self.prefix + "qd"

    @property
    def deadlines(self) -> str:
        """ZSET task id -> its deadline ms (``expires``), while the task waits (not started)."""
        return self.prefix + "exp"

    @property
    def waiting(self) -> str:
        """ZSET task id -> when it was created, ms: the tasks that wait for others (core/deps)."""
        return self.prefix + "waiting"

    def task_children(self, task_id: str) -> str:
        """LIST of the ids of the tasks waiting for task ``task_id`` (its record's children flag)."""
        return f"{self.prefix}tc:{task_id}"

    def group_children(self, group_id: str) -> str:
        """LIST of the ids of the tasks waiting for group ``group_id`` (its record's children flag)."""
        return f"{self.prefix}gc:{group_id}"

    def schedule(self, name: str) -> str:
        """HASH: schedule ``name`` (fields.SCHEDULE)."""
        return f"{self.prefix}sch:{name}"

    @property
    def schedules(self) -> str:
        """ZSET schedule name -> the ms its pending tick is due (+inf while paused): the index of
        the schedules, and what the scheduler loops wait for."""
        return self.prefix + "schd"

    @property
    def unique_index(self) -> str:
        """HASH unique key -> the id of the task holding it (core/unique): written by submit,
        removed by the script that moves that task past its ``unique_until`` point."""
        return self.prefix + "uq"

    @property
    def audit_log(self) -> str:
        """STREAM of the dashboard's admin actions (luasched/web): who, what, when, how many;
        capped by each append (XADD MAXLEN ~, luasched.web.reads.AUDIT_LOG_MAX)."""
        return self.prefix + "auditlog"

    @property
    def metrics_total(self) -> str:
        """HASH of the histograms kept since the namespace began (fields.METRIC, lua/lib/metrics)."""
        return self.prefix + "mt"

    def metrics_minute(self, minute: int) -> str:
        """HASH: a copy of ``metrics_total`` as it was at the first reap of minute ``minute``
        (= ms // 60000), kept for core/metrics KEEP_S (statistics, not a marker of any task)."""
        return f"{self.prefix}m:{minute}"
