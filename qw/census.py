"""The table of tasks, as gearman's server info: who can run each task, how many run, how many wait.

What ``qw-client tasks`` prints and ``qw-client info`` appends. Per task:

- **workers**: the workers of the live managers that loaded it (each
  publishes its task names in ``<manager>:info``), or, for an import path
  (``pkg.mod:fn``), of those whose ``--allow`` patterns match its module;
- **running**: its jobs claimed by those managers' workers now (the one a
  worker runs, and with ``--prefetch`` those it holds): the right end of each
  worker's in-progress list, whose job hashes carry ``qw:running``;
- **queued**: its jobs waiting in the queues those managers serve
  (``all:jobs`` or their named queues, and each one's own queue).

Every read is pipelined: four round trips whatever the number of
managers, workers and queues, plus one per :data:`BATCH` job hashes. Each queue is read up to
:data:`QUEUED_CAP` ids (the next to run), so a deep queue cannot make this
slow; a count that stopped there is a lower bound, and the report says so.
Tasks that no live manager runs but whose jobs are queued are listed too,
with no workers: those jobs wait for nobody.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

from .dispatch import AllowList
from .exceptions import ConfigError
from .inspection import decode_info, get_all_managers, is_marker, member_id, priority_set
from .store import Store, text

QUEUED_CAP = 10_000  # ids read per queue (the next to run); beyond, counts are "at least"
BATCH = 5_000  # job hashes read per round trip
_TASK, _RUNNING = "qw:task", "qw:running"


@dataclass
class _Live:
    """A live manager as its info hash describes it."""

    name: str
    workers: int
    tasks: frozenset[str]
    queues: list[str]  # full key names, its own queue included
    allow: AllowList
    prefetch: int
    worker_names: list[str]

    def runs(self, task: str) -> bool:
        """True if this manager's workers run jobs of ``task`` (a name or an import path)."""
        if ":" in task:
            return task.partition(":")[0] in self.allow
        return task in self.tasks


def task_table(store: Store, manager: Optional[str] = None, name_filter: str = "",
               cap: int = QUEUED_CAP) -> dict[str, Any]:
    """Per task: workers that can run it, jobs of it running now, jobs of it queued.

    Over every live manager, or ``manager`` only, for tasks whose name
    contains ``name_filter``; ``cap`` ids are read per queue. Returns
    ``tasks`` (rows sorted by name: ``task``, ``workers``, ``running``,
    ``queued``, ``managers``), ``plain`` (jobs without a task: ``running``,
    ``queued``), ``queues`` (each queue read: ``queue``, ``depth``, ``read``),
    ``cap`` and ``queued_capped`` (True when some queue held more than
    ``cap``: every ``queued`` is then at least that).
    """
    if cap < 1:
        raise ConfigError(f"the cap of ids read per queue must be at least 1, got {cap}")
    managers = _live(store, [manager] if manager else get_all_managers(store))
    running = _running(store, managers)
    queues = list(dict.fromkeys(key for m in managers for key in m.queues))
    queued, depths = _queued(store, queues, cap)
    # Plain jobs (None) get a line of their own.
    names = {name for m in managers for name in m.tasks} | {n for n in (*running, *queued) if n is not None}
    rows = []
    for name in sorted(n for n in names if name_filter in n):
        serving = [m for m in managers if m.runs(name)]
        rows.append({"task": name, "workers": sum(m.workers for m in serving), "running": running[name],
                     "queued": queued[name], "managers": [m.name for m in serving]})
    shown = [{"queue": _display(store, key), "depth": depth, "read": read} for key, depth, read in depths]
    return {"tasks": rows, "plain": {"running": running[None], "queued": queued[None]},
            "queues": shown, "cap": cap, "queued_capped": any(d > r for _k, d, r in depths)}


def _live(store: Store, names: Iterable[str]) -> list[_Live]:
    """The managers among ``names`` that hold a live lease and publish their info (one round trip)."""
    keys = store.keys
    names = list(names)
    pipe = store.redis.pipeline(transaction=False)
    for name in names:
        pipe.exists(keys.manager_heartbeat(name))
        pipe.hgetall(keys.manager_info(name))
        pipe.smembers(keys.manager_workers(name))
    replies = pipe.execute()
    live = []
    for i, name in enumerate(names):
        alive, raw, workers = replies[3 * i: 3 * i + 3]
        if not alive or not raw:
            continue
        info = decode_info(raw)
        served = info.get("queues") or ["all"]  # a manager of before named queues: all:jobs
        queues = [_queue_key(store, q) for q in served if isinstance(q, str)]
        live.append(_Live(
            name=name, workers=int(info.get("running", info.get("workers")) or 0),
            tasks=frozenset(t for t in info.get("tasks") or () if isinstance(t, str)),
            queues=[k for k in queues if k] + [keys.manager_jobs(name)],
            allow=_allow(info.get("allow")), prefetch=max(1, int(info.get("prefetch") or 1)),
            worker_names=sorted(text(w) for w in workers)))
    return live


def _queue_key(store: Store, name: str) -> str:
    try:
        return store.keys.named_queue(name)
    except ConfigError:  # not a queue name: nothing a worker could take from
        return ""


def _allow(patterns: Any) -> AllowList:
    try:
        return AllowList(p for p in patterns or () if isinstance(p, str))
    except ConfigError:
        return AllowList()


def _running(store: Store, managers: list[_Live]) -> Counter:
    """Claimed jobs per task name (None: plain) in the live workers' in-progress lists."""
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    for m in managers:
        for worker in m.worker_names:
            # Claimed jobs sit at the right end: the running one, and those a prefetch holds.
            pipe.lrange(keys.worker_jobs(worker), -m.prefetch, -1)
    ids = [text(i) for batch in pipe.execute() for i in batch]
    counts: Counter = Counter()
    for task, token in _read(store, ids, lambda pipe, key: pipe.hmget(key, [_TASK, _RUNNING])):
        if token is not None:  # claimed; an unclaimed id there was queued to that worker
            counts[_name(task)] += 1
    return counts


def _queued(store: Store, queues: list[str], cap: int) -> tuple[Counter, list[tuple[str, int, int]]]:
    """Jobs per task name (None: plain, or an id without a hash) among the next ``cap`` of each queue;
    and (key, depth, ids read) of each queue."""
    pipe = store.redis.pipeline(transaction=False)
    for key in queues:
        pipe.llen(key)
        pipe.lrange(key, -cap, -1)
        pipe.zcard(priority_set(key))
        pipe.zrange(priority_set(key), 0, cap - 1)
    replies = pipe.execute()
    depths, ids = [], []
    for i, key in enumerate(queues):
        depth, batch, prioritised, members = replies[4 * i : 4 * i + 4]
        jobs = [text(job_id) for job_id in batch if not is_marker(job_id)]
        marked = len(batch) - len(jobs)  # the marker is at the head, among those read
        jobs += [member_id(m) for m in members]
        depths.append((key, int(depth) - marked + int(prioritised), len(jobs)))
        ids += jobs
    counts = Counter(_name(task) for task in _read(store, ids, lambda pipe, key: pipe.hget(key, _TASK)))
    return counts, depths


def _read(store: Store, ids: list[str], command: Callable[[Any, str], Any]) -> Iterator[Any]:
    """``command(pipe, job key)``'s reply for each job, :data:`BATCH` jobs per round trip."""
    for start in range(0, len(ids), BATCH):
        pipe = store.redis.pipeline(transaction=False)
        for job_id in ids[start:start + BATCH]:
            command(pipe, store.keys.job(job_id))
        yield from pipe.execute()


def _name(task: Any) -> Optional[str]:
    return text(task) if task is not None else None


def _display(store: Store, key: str) -> str:
    """A key as ``qw-client`` shows it: without the namespace (``all:jobs``, ``all:queue:emails``)."""
    namespace = store.keys.namespace
    return key[len(namespace):] if namespace and key.startswith(namespace) else key
