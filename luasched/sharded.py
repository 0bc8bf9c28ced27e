"""One workload spread over several namespaces ("shards"), so a Redis Cluster carries it on
several nodes: each namespace lives on one slot, so each script still runs on one node."""

from __future__ import annotations

import dataclasses
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import redis
from redis.crc import key_slot

from ._sync.handles import TaskHandle, handle_for
from ._sync.processor import Processor
from ._sync.scheduler import Scheduler
from .core.audit import Audit
from .core.keys import Keys
from .core.ops import NewTask
from .core.options import check_int, check_namespace, seconds
from .core.replies import Outcome
from .core.tasks import TaskFunction, new_task_id

MAX_SHARDS = 1024


def shard_namespaces(namespace: str, shards: int) -> list[str]:
    """``namespace.0`` ... ``namespace.{shards-1}``: stable names, whatever the cluster's layout."""
    check_namespace(namespace)
    check_int(shards, "shards", 1, MAX_SHARDS)
    return [f"{namespace}.{i}" for i in range(shards)]


def spread_namespaces(namespace: str, shards: int, owner: Callable[[int], str],
                      owners: Sequence[str]) -> list[str]:
    """Names ``namespace.<k>`` chosen so that shard i lands on ``owners[i % len(owners)]``, where
    ``owner(slot)`` names the node serving a slot (pure: give it a cluster's slot map).

    The names depend on the slot map at the time: compute them once and keep them (in your
    configuration), so that every producer and processor uses the same ones after a reshard."""
    check_namespace(namespace)
    check_int(shards, "shards", 1, MAX_SHARDS)
    if not owners:
        raise ValueError("spread_namespaces: no nodes to spread over")
    names: list[str] = []
    k = 0
    for i in range(shards):
        want = owners[i % len(owners)]
        for _ in range(100_000):
            name = f"{namespace}.{k}"
            k += 1
            if owner(key_slot(Keys(name).stats.encode())) == want:
                names.append(name)
                break
        else:
            raise ValueError(f"spread_namespaces: no name found for node {want}")
    return names


def cluster_namespaces(client: redis.RedisCluster, namespace: str, shards: int) -> list[str]:
    """``spread_namespaces`` over the primaries of a live cluster, in turn."""
    primaries = sorted(n.name for n in client.get_primaries())  # type: ignore[no-untyped-call]

    def owner(slot: int) -> str:
        node = client.nodes_manager.get_node_from_slot(slot)
        return str(node.name)

    return spread_namespaces(namespace, shards, owner, primaries)


class Sharded:
    """Several Schedulers, one per namespace, sharing one client and one task registry.

    ``submit`` places each task on a shard by its id (so submitting an ``_id`` again goes to the
    same shard and creates nothing), a task with a unique key on the shard its key hashes to (its
    id is drawn to hash there too: the key is unique across the shards); ``submit_many`` sends one round trip per shard;
    ``processor`` makes a processor serving every shard; ``run`` runs a scheduler loop per shard.
    Reads (counts, audit) add the shards up. Give ``shards`` (names ``namespace.0`` ...) or the
    ``namespaces`` themselves (e.g. from ``cluster_namespaces``).
    """

    def __init__(self, redis: object = None, namespace: str = "default", shards: int = 4, *,
                 namespaces: Sequence[str] | None = None, **options: Any) -> None:
        names = list(namespaces) if namespaces is not None else shard_namespaces(namespace, shards)
        if not names:
            raise ValueError("Sharded needs at least one namespace")
        if len(set(names)) != len(names):
            raise ValueError("Sharded: namespaces repeat")
        first = Scheduler(redis, names[0], **options)
        options["read_redis"] = list(first.reads.replicas) or None
        options.pop("service_name", None)
        self.schedulers = [first]
        try:
            for name in names[1:]:
                other = Scheduler(first.client, name, **options)
                other.registry = first.registry
                self.schedulers.append(other)
        except BaseException:
            first.close()
            raise
        self.namespaces = names

    def __repr__(self) -> str:
        return f"<luasched.Sharded {len(self.schedulers)} namespaces: {', '.join(self.namespaces)}>"

    def close(self) -> None:
        for s in self.schedulers:
            s.close()

    def __enter__(self) -> Sharded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def task(self) -> Any:
        """``@sharded.task`` registers a task for every shard (they share one registry)."""
        return self.schedulers[0].task

    def shard(self, task_id: str) -> Scheduler:
        """The shard a task id belongs to (a stable hash of the id)."""
        return self.schedulers[self._index(task_id)]

    def _index(self, text: str) -> int:
        return zlib.crc32(text.encode()) % len(self.schedulers)

    def _keyed(self, new: NewTask, own_id: bool) -> NewTask:
        """A task with a unique key goes to the shard its key hashes to, whose index holds the
        key: its id is drawn again until the id hashes there too (every lookup goes by id). An id
        of your own that hashes elsewhere is refused, nothing written."""
        if new.unique_key is None or self._index(new.id) == (want := self._index(new.unique_key)):
            return new
        if own_id:
            raise ValueError(f"task id {new.id!r} and unique key {new.unique_key!r} hash to different shards: "
                             f"give no id of your own with a unique key on a Sharded")
        task_id = new_task_id()
        while self._index(task_id) != want:
            task_id = new_task_id()
        return dataclasses.replace(new, id=task_id)

    def handle(self, task_id: str) -> TaskHandle:
        return self.shard(task_id).handle(task_id)

    def submit(self, task: str | TaskFunction, /, *args: Any, **kwargs: Any) -> TaskHandle:
        """Like Scheduler.submit; the task goes to the shard its id hashes to. A task that waits
        (``_after``) goes to the shard of what it waits for (its id is drawn to hash there), as
        ``TaskHandle.then`` does: a task waits only within one shard."""
        own_id = "_id" in kwargs
        if kwargs.get("_after") is not None:
            return self._submit_after(task, args, kwargs, own_id)
        new = self._keyed(self.schedulers[0].submission(task, args, kwargs), own_id)
        shard = self.shard(new.id)
        return handle_for(shard, new.id, shard._submit([new], "").merged)

    def _submit_after(self, task: str | TaskFunction, args: Sequence[Any], kwargs: dict[str, Any],
                      own_id: bool) -> TaskHandle:
        after = kwargs["_after"]
        if isinstance(after, (str, bytes)) or not isinstance(after, Iterable):
            raise TypeError("_after must be a list of TaskHandles, Groups or task ids")
        after = kwargs["_after"] = list(after)
        where = {self._index(p) if isinstance(p, str) else self._of_namespace(p) for p in after}
        if len(where) > 1:
            raise ValueError("_after names tasks on different shards of this Sharded: a task waits only "
                             "within one shard (group what it waits for on one Scheduler of .schedulers)")
        shard = self.schedulers[where.pop()] if where else self.schedulers[0]  # none: submission says so
        new = shard.submission(task, args, kwargs)
        want = self.schedulers.index(shard)
        if own_id and self._index(new.id) != want:
            raise ValueError(f"task id {new.id!r} hashes to another shard than what it waits for: give no "
                             f"id of your own with _after on a Sharded")
        if new.unique_key is not None and self._index(new.unique_key) != want:
            raise ValueError(f"unique key {new.unique_key!r} hashes to another shard than what it waits for: "
                             f"a task with _after on a Sharded cannot have a unique key of another shard")
        task_id = new.id
        while self._index(task_id) != want:
            task_id = new_task_id()
        return shard._submit_alone(dataclasses.replace(new, id=task_id))

    def _of_namespace(self, parent: Any) -> int:
        namespace = getattr(parent, "namespace", None)
        if namespace not in self.namespaces:
            raise ValueError(f"_after: {parent!r} belongs to none of this Sharded's namespaces")
        return self.namespaces.index(namespace)

    def submit_many(self, task: str | TaskFunction, items: Iterable[Any], *,
                    ids: Sequence[str] | None = None, queue: str | None = None,
                    delay: float | timedelta | None = None, max_attempts: int | None = None,
                    timeout: float | timedelta | None = None,
                    retry_backoff: float | timedelta | None = None, priority: int | None = None,
                    key: str | None = None, limits: Sequence[str] | None = None,
                    expires: float | timedelta | None = None,
                    requires: Mapping[str, object] | None = None, unique_key: str | None = None,
                    unique_until: str | None = None, debounce: float | timedelta | None = None) -> list[TaskHandle]:
        """Like Scheduler.submit_many: one round trip per shard; handles in the items' order.
        Limiters, weights and pauses are each shard's own (set them on ``schedulers``); a unique
        key lives on the shard it hashes to (the task ids are drawn to hash there too)."""
        news = [self._keyed(new, ids is not None) for new in self.schedulers[0].batch(
            task, items, ids, unique_key, debounce, queue=queue, delay=delay, max_attempts=max_attempts,
            timeout=timeout, retry_backoff=retry_backoff, priority=priority, key=key, limits=limits, expires=expires,
            requires=requires, unique_until=unique_until)]
        by_shard: dict[int, list[Any]] = {}
        for new in news:
            by_shard.setdefault(id(self.shard(new.id)), []).append(new)
        merged: dict[str, tuple[str, str]] = {}
        for s in self.schedulers:
            if id(s) in by_shard:
                merged.update(s._submit(by_shard[id(s)], "").merged)
        return [handle_for(self.shard(n.id), n.id, merged) for n in news]

    def outcomes(self, task_ids: Sequence[str]) -> list[Outcome]:
        """Outcomes of many tasks: one round trip per shard they are on."""
        found: dict[str, Outcome] = {}
        for s in self.schedulers:
            mine = [t for t in task_ids if self.shard(t) is s]
            found.update((o.task_id, o) for o in s.outcomes(mine))
        return [found[t] for t in task_ids]

    def dispatch(self, limit: int = 100) -> list[tuple[str, str]]:
        """One dispatch call per shard."""
        return [pair for s in self.schedulers for pair in s.dispatch(limit)]

    def counts(self) -> dict[str, int]:
        """Every shard's counts added up (times: the latest)."""
        total: dict[str, int] = {}
        for s in self.schedulers:
            for k, v in s.counts().items():
                total[k] = max(total.get(k, 0), v) if k.endswith("_ms") else total.get(k, 0) + v
        return total

    def audit(self) -> Audit:
        """Every shard audited; problems name their namespace; counts add up."""
        audits = [(s.namespace, s.audit()) for s in self.schedulers]
        counts: dict[str, int] = {}
        for _, a in audits:
            for k, v in a.counts.items():
                counts[k] = counts.get(k, 0) + v
        problems = [f"{ns}: {p}" for ns, a in audits for p in a.problems]
        return Audit(not problems, problems, counts)

    def processor(self, capacity: int = 1, queues: Sequence[str] = ("default",), lease: float = 10.0,
                  name: str | None = None, **options: Any) -> Processors:
        """A processor serving every shard: one registration (with ``capacity`` slots) per shard;
        the other options as ``Scheduler.processor`` takes them."""
        return Processors([s.processor(capacity, queues, lease, name, **options) for s in self.schedulers])

    def run(self, stop: threading.Event | None = None, *, limit: int = 100, max_wait: float = 1.0,
            reap_every: float = 0.25) -> None:
        """A scheduler loop per shard (one thread each) until ``stop`` is set."""
        stop = stop if stop is not None else threading.Event()
        threads = [threading.Thread(target=s.run, args=(stop,), name=f"luasched-run-{s.namespace}",
                                    kwargs={"limit": limit, "max_wait": max_wait, "reap_every": reap_every},
                                    daemon=True) for s in self.schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def wake(self) -> None:
        for s in self.schedulers:
            s.wake()

    def purge(self) -> int:
        return sum(s.purge() for s in self.schedulers)

    def purge_finished(self, *, older_than: float | timedelta = 0, limit: int | None = None) -> int:
        """Every shard's dead letters that failed at least ``older_than`` ago (see
        ``Scheduler.purge_finished``), at most ``limit`` in all; how many went."""
        seconds(older_than, "older_than")
        if limit is not None:
            check_int(limit, "limit", 1, 2**62)
        deleted = 0
        for s in self.schedulers:
            if limit is not None and deleted >= limit:
                break
            deleted += s.purge_finished(older_than=older_than, limit=None if limit is None else limit - deleted)
        return deleted


class Processors:
    """Processors of one process, one per shard, used as one."""

    def __init__(self, processors: list[Processor]) -> None:
        self.processors = processors

    def __repr__(self) -> str:
        return f"<luasched.sharded.Processors {len(self.processors)} shards>"

    @property
    def processed(self) -> int:
        return sum(p.processed for p in self.processors)

    def register(self) -> bool:
        return all([p.register() for p in self.processors])

    def heartbeat(self) -> bool:
        return all([p.heartbeat() for p in self.processors])

    def process_available(self) -> int:
        return sum(p.process_available() for p in self.processors)

    def deregister(self) -> list[str]:
        return [t for p in self.processors for t in p.deregister()]

    def start(self) -> None:
        for p in self.processors:
            p.start()

    def stop(self, timeout: float | None = None) -> bool:
        return all([p.stop(timeout) for p in self.processors])


__all__ = ["Processors", "Sharded", "cluster_namespaces", "shard_namespaces", "spread_namespaces"]
