"""Every Redis key name qw uses, and the rules for manager and queue names.

This module is the only place that spells a key. The README's key table is
checked against :data:`LAYOUT` by a test, so keep the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .exceptions import ConfigError

# The wire format: (key pattern, Redis type, meaning). Other programs read and
# write these keys, so their names and meanings never change.
LAYOUT: tuple[tuple[str, str, str], ...] = (
    ("all:managers", "set", "names of registered managers"),
    ("all:jobs", "list", "the shared queue; producers LPUSH ids, workers take from the right"),
    ("job:<job_id>", "hash", "the job's data, plus qw's own `qw:`-prefixed fields"),
    ("<manager>:workers", "set", "worker names of one manager"),
    ("<manager>:jobs", "list", "jobs only that manager's workers may take; tried before all:jobs"),
    ("<worker>:jobs", "list", "the worker's in-progress list; a job queued to one worker lands here"),
    ("all:queue:<name>", "list",
     "a named queue (`--queue`); producers LPUSH ids, workers take from the right"),
    ("all:queue:<name>:idle", "hash",
     "idle worker name -> client id it blocks on, for the workers serving that queue; at most one entry "
     "per such worker, removed when it claims or leaves"),
    ("<queue>:prio", "zset",
     "the prioritised jobs of a queue (all:jobs, all:queue:<name>, <manager>:jobs): member "
     "`<16-digit sequence>:<id>`, score its priority; while it holds any, the list's head is the marker "
     "`\\0qw:prio:<queue>`"),
    ("all:priority:seq", "string",
     "the sequence number of the last prioritised job: keeps equal priorities in order"),
    ("all:failed", "list", "ids of failed jobs; their hashes keep qw:error, qw:errors and qw:traceback"),
    ("all:scheduled", "zset",
     "ids of delayed jobs and of jobs waiting for a retry, scored by when they are due (unix seconds, "
     "Redis's clock)"),
    ("all:scheduled:wake", "list",
     "at most one token, pushed when a job is scheduled sooner than the earliest one: wakes a manager's "
     "scheduler; expires after 10 s"),
    ("all:recurring", "zset",
     "names of the recurring schedules, scored by their next due time (unix seconds; a paused one: +inf)"),
    ("all:recurring:<name>", "hash",
     "a recurring schedule: its definition (JSON), version, next and last fire, last run's job id, counts "
     "(fired, skipped overlaps, missed); one per schedule, until `unrecur`"),
    ("all:settled:<job_id>", "list",
     "one token per waiter, pushed when that job settles (done, failed, cancelled); expires 60 s later"),
    ("all:finished", "zset",
     "ids of kept records of done and cancelled jobs, by when they settled; ids of expired records are "
     "dropped by the managers in batches, it holds at most 100,000, and it expires a little after its "
     "newest record (unless it holds a tracked one)"),
    ("all:tag:<tag>", "zset",
     "ids of jobs queued with that tag, by when they were queued; ids of expired records are dropped "
     "in batches"),
    ("all:tags", "zset", "tag -> when a job was last queued with it: the tag indexes to clean"),
    ("all:tracked", "set", "ids of tracked jobs (`track`): their records stay until untracked"),
    ("all:partitions", "string", "with partitions (`qw.partitions`): how many the deployment under this "
     "namespace has, set once and checked by every partitioned client; never expires (one per deployment)"),
    ("all:waiting", "zset",
     "ids of jobs waiting for their dependencies (`depends_on`), by when they were queued"),
    ("all:dependents:<job_id>", "list",
     "ids of the jobs waiting for that job; consumed, and so gone, when it settles"),
    ("all:releasing", "hash",
     "job id -> JSON [outcome, error]: a settled job whose dependents a script left for the managers "
     "to finish (at most 1,000 are settled per script)"),
    ("all:orphaned", "set", "names of departed managers whose own queue still holds jobs"),
    ("all:reaper", "string", "lock held by the one manager reaping departed managers right now"),
    ("<manager>:heartbeat", "string", "the manager's lease: its holder, expiring unless renewed"),
    ("<manager>:health", "hash",
     "worker name -> JSON: pid, how long its job has run, seconds since Redis last answered it"),
    ("<manager>:idle", "hash", "idle worker name -> client id it blocks on, so a producer can wake it"),
    ("<manager>:info", "hash",
     "the manager's pid, host, version, target, worker count, paused, history; task names, queues, allow"),
    ("<manager>:control", "list", "commands to the manager (JSON), from `qw-client scale` and the like"),
    ("<manager>:reply:<id>", "list", "the manager's answer to command <id> (JSON), expiring"),
    ("<manager>:stats:<period>:<n>", "hash",
     "counts and histogram buckets of the manager's jobs in minute (m) or day (d) number n"),
    ("all:stats:<period>:<n>", "hash", "the same over all managers, plus `queued`; both expire"),
    ("all:stats:task:<task>:<period>:<n>", "hash",
     "the same for the jobs of one task that managers loaded, over all managers; expires likewise"),
    ("all:stats:queue:<name>:<period>:<n>", "hash",
     "the same for the jobs taken from one named queue, over all managers; expires likewise"),
)

RESERVED_MANAGER_NAMES = frozenset({"all", "job"})
_BAD_NAME = re.compile(r"[:\s]")

# Hash fields qw writes into job:<id> start with this; user data may not.
META_PREFIX = "qw:"

# The queue name that means the shared all:jobs rather than all:queue:<name>.
SHARED_QUEUE = "all"
# Letters, digits, '_', '.', '-': no ':' (a key separator), no whitespace, no
# glob characters, so a queue name is safe in a key and on a command line.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def validate_manager_name(name: str) -> str:
    """Return ``name`` if it may name a manager, else raise :class:`ConfigError`."""
    if not name:
        raise ConfigError("manager name must not be empty")
    if name in RESERVED_MANAGER_NAMES:
        raise ConfigError(f"manager name {name!r} is reserved")
    if _BAD_NAME.search(name):
        raise ConfigError(f"manager name {name!r} must not contain ':' or whitespace")
    return name


def validate_queue_name(name: str) -> str:
    """Return ``name`` if it may name a queue, else raise :class:`ConfigError` saying why.

    A queue name is 1 to 64 characters of ``A-Z a-z 0-9 _ . -``; ``all``
    names the shared queue ``all:jobs``.
    """
    if not isinstance(name, str):
        raise ConfigError(f"queue name must be a string, got {name!r}")
    if not _QUEUE_NAME.fullmatch(name):
        if not name:
            raise ConfigError("queue name must not be empty")
        if len(name) > 64:
            raise ConfigError(f"queue name {name[:20]!r}... is longer than 64 characters")
        raise ConfigError(f"queue name {name!r} may hold only letters, digits, '_', '.' and '-'")
    return name


# A schedule's name: as a queue name's characters (safe in a key and on a
# command line), long enough for a task name, which a @qw.periodic task uses.
_SCHEDULE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def validate_schedule_name(name: str) -> str:
    """Return ``name`` if it may name a recurring schedule, else raise :class:`ConfigError` saying why.

    1 to 200 characters of ``A-Z a-z 0-9 _ . -``.
    """
    if not isinstance(name, str) or not _SCHEDULE_NAME.fullmatch(name):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a schedule name must be a non-empty string, got {name!r}")
        if len(name) > 200:
            raise ConfigError(f"schedule name {name[:20]!r}... is longer than 200 characters")
        raise ConfigError(f"schedule name {name!r} may hold only letters, digits, '_', '.' and '-'")
    return name


def validate_task_name(name: str) -> str:
    """Return ``name`` if it may name a registered task, else raise :class:`ConfigError`.

    The rule ``qw.tasks`` registers names under: not empty, no ``:`` (that
    marks an import path), no whitespace; so a task name is safe in a key.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a task name must be a non-empty string, got {name!r}")
    if ":" in name:
        raise ConfigError(f"task name {name!r} must not contain ':', which marks an import path")
    if any(c.isspace() for c in name):
        raise ConfigError(f"task name {name!r} must not contain whitespace")
    return name


def worker_name(manager: str, slot: int) -> str:
    """Name of the worker in ``slot`` of ``manager``.

    A ``:`` cannot occur in a manager name, so ``<manager>:<slot>`` can never
    collide with a manager's own keys, and a replacement worker in the same
    slot inherits the in-progress list of the one it replaces.
    """
    return f"{manager}:{slot}"


def manager_of_worker(worker: str) -> str:
    """The manager part of a worker name made by :func:`worker_name`."""
    manager, sep, _slot = worker.rpartition(":")
    if not sep or not manager:
        raise ConfigError(f"{worker!r} is not a worker name (expected <manager>:<n>)")
    return manager


@dataclass(frozen=True)
class Keys:
    """Key names under one namespace prefix (default none).

    A prefix with a hash tag, such as ``{app}:``, puts every key of the
    namespace in one Redis Cluster slot, which qw's scripts rely on there.
    """

    namespace: str = ""

    @property
    def all_managers(self) -> str:
        return f"{self.namespace}all:managers"

    @property
    def all_jobs(self) -> str:
        return f"{self.namespace}all:jobs"

    @property
    def all_failed(self) -> str:
        return f"{self.namespace}all:failed"

    @property
    def all_scheduled(self) -> str:
        return f"{self.namespace}all:scheduled"

    @property
    def all_finished(self) -> str:
        return f"{self.namespace}all:finished"

    @property
    def all_tags(self) -> str:
        return f"{self.namespace}all:tags"

    @property
    def all_waiting(self) -> str:
        return f"{self.namespace}all:waiting"

    @property
    def all_releasing(self) -> str:
        return f"{self.namespace}all:releasing"

    def dependents(self, job_id: str) -> str:
        """``all:dependents:<id>``: the jobs waiting for that one."""
        return f"{self.namespace}all:dependents:{job_id}"

    @property
    def all_partitions(self) -> str:
        """How many partitions the deployment under this namespace has (qw.partitions)."""
        return f"{self.namespace}all:partitions"

    @property
    def all_tracked(self) -> str:
        return f"{self.namespace}all:tracked"

    def tag(self, tag: str) -> str:
        """``all:tag:<tag>``: the ids of jobs queued with that tag."""
        return f"{self.namespace}all:tag:{tag}"

    def settled(self, job_id: str) -> str:
        """``all:settled:<id>``: where the waiters of that job block until it settles."""
        return f"{self.namespace}all:settled:{job_id}"

    @property
    def all_scheduled_wake(self) -> str:
        """Where a scheduler blocks; a job due sooner than the earliest one pushes a token."""
        return f"{self.all_scheduled}:wake"

    @property
    def all_recurring(self) -> str:
        return f"{self.namespace}all:recurring"

    def recurring(self, name: str) -> str:
        """``all:recurring:<name>``; the name is checked (:func:`validate_schedule_name`)."""
        return f"{self.namespace}all:recurring:{validate_schedule_name(name)}"

    @property
    def all_orphaned(self) -> str:
        return f"{self.namespace}all:orphaned"

    @property
    def all_reaper(self) -> str:
        return f"{self.namespace}all:reaper"

    @property
    def job_prefix(self) -> str:
        """What ``job:<id>`` starts with; Lua scripts append the id to it."""
        return f"{self.namespace}job:"

    def job(self, job_id: str) -> str:
        return f"{self.job_prefix}{job_id}"

    def manager_workers(self, manager: str) -> str:
        return f"{self.namespace}{manager}:workers"

    def manager_jobs(self, manager: str) -> str:
        return f"{self.namespace}{manager}:jobs"

    def manager_heartbeat(self, manager: str) -> str:
        return f"{self.namespace}{manager}:heartbeat"

    def manager_health(self, manager: str) -> str:
        return f"{self.namespace}{manager}:health"

    def manager_idle(self, manager: str) -> str:
        return f"{self.namespace}{manager}:idle"

    def manager_info(self, manager: str) -> str:
        return f"{self.namespace}{manager}:info"

    def manager_control(self, manager: str) -> str:
        return f"{self.namespace}{manager}:control"

    def manager_reply(self, manager: str, command_id: str) -> str:
        return f"{self.namespace}{manager}:reply:{command_id}"

    def manager_stats(self, manager: str, period: str, n: int) -> str:
        return f"{self.namespace}{manager}:stats:{period}:{n}"

    def all_stats(self, period: str, n: int) -> str:
        return f"{self.namespace}all:stats:{period}:{n}"

    def task_stats(self, task: str, period: str, n: int) -> str:
        """``all:stats:task:<task>:<period>:<n>``; the name is checked (:func:`validate_task_name`)."""
        return f"{self.namespace}all:stats:task:{validate_task_name(task)}:{period}:{n}"

    def queue_stats(self, queue: str, period: str, n: int) -> str:
        """``all:stats:queue:<name>:<period>:<n>``; the name is checked (:func:`validate_queue_name`)."""
        return f"{self.namespace}all:stats:queue:{validate_queue_name(queue)}:{period}:{n}"

    def worker_jobs(self, worker: str) -> str:
        return f"{self.namespace}{worker}:jobs"

    def named_queue(self, name: str) -> str:
        """The list of queue ``name``: ``all:queue:<name>``, or ``all:jobs`` for ``all``.

        The name is checked (:func:`validate_queue_name`): a key is never
        built from a name that could reach outside ``all:queue:``.
        """
        if name == SHARED_QUEUE:
            return self.all_jobs
        return f"{self.namespace}all:queue:{validate_queue_name(name)}"

    def named_queue_idle(self, name: str) -> str:
        """The idle hash of queue ``name``: ``all:queue:<name>:idle`` (worker name -> client id).

        Workers serving the queue list themselves there while they wait, as
        in ``<manager>:idle``, so that a producer can wake one the moment a
        job arrives. ``all`` has none: its waiters block on ``all:jobs``
        itself, and an LPUSH there wakes them.
        """
        if name == SHARED_QUEUE:
            raise ConfigError("the shared queue 'all' has no idle hash: its waiters block on all:jobs")
        return f"{self.named_queue(name)}:idle"
