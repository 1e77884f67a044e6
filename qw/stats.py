"""Counters and histograms: counted in memory by workers, kept in Redis by managers.

A worker counts each job it settles, and its wait (queued to started) and
run time, in shared memory: no round trip is added to a job. Its manager adds
the counts up once a tick and writes them into per-minute and per-day hashes
(``<manager>:stats:<period>:<n>`` and ``all:stats:<period>:<n>``, and per
task and per named queue ``all:stats:task:<task>:...`` and
``all:stats:queue:<name>:...``) that expire after the configured history, so
memory in Redis stays bounded. Producers count ``queued`` in the overall
hashes from the queuing scripts.

This module holds the counting (:class:`Tally`), the figures and how they
are read back (:func:`report`); :mod:`qw.keeper` is the manager's side that
writes them, :mod:`qw.breakdown` a worker's counts per task and queue.

What a manager had counted but not yet written when it died is lost: the
figures are for watching, never for accounting.
"""

from __future__ import annotations

import bisect
import math
import multiprocessing
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import redis

from .exceptions import ConfigError
from .keys import SHARED_QUEUE, Keys, validate_queue_name, validate_task_name

# Upper bounds of the histogram buckets, in seconds; the last one is +Inf.
BOUNDS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                             1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, math.inf)
OUTCOMES = ("processed", "failed", "retried")  # counted by workers
COUNTERS = ("queued", *OUTCOMES, "requeued")  # as stored; queued by producers, requeued by managers
HISTOGRAMS = ("wait", "run")
MINUTE, DAY = "m", "d"
PERIOD_SECONDS = {MINUTE: 60, DAY: 86400}
DEFAULT_HISTORY = (6.0, 7)  # hours of minutes, days of days

_N = len(BOUNDS)
# Layout of a worker's integer array: outcomes, then wait buckets, then run buckets.
_WAIT0 = len(OUTCOMES)
_RUN0 = _WAIT0 + _N
ROW_SIZE = _RUN0 + _N  # integers per tally (qw.breakdown keeps one such row per task and queue)


def bucket_of(seconds: float) -> int:
    """Index of the bucket ``seconds`` falls in."""
    return bisect.bisect_left(BOUNDS, seconds)


def bound_label(index: int) -> str:
    """The hash field suffix / Prometheus ``le`` of bucket ``index``."""
    bound = BOUNDS[index]
    return "+Inf" if bound == math.inf else repr(bound)


class Tally:
    """One worker's counts, in memory shared with its manager (one writer: the worker)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.counts = ctx.Array("q", ROW_SIZE, lock=False)
        self.sums = ctx.Array("d", 2, lock=False)  # wait, run: seconds in all

    def record(self, outcome: int, wait: Optional[float], run: float) -> None:
        """Count a settled job: ``outcome`` indexes :data:`OUTCOMES`; ``wait`` None if unknown."""
        counts = self.counts
        counts[outcome] += 1
        if wait is not None:
            wait = max(0.0, wait)
            counts[_WAIT0 + bisect.bisect_left(BOUNDS, wait)] += 1
            self.sums[0] += wait
        counts[_RUN0 + bisect.bisect_left(BOUNDS, run)] += 1
        self.sums[1] += run

    def snapshot(self) -> tuple[list[int], list[float]]:
        return list(self.counts), list(self.sums)


@dataclass
class Figures:
    """Counts over some span: what :func:`read` returns and :class:`Keeper` adds up."""

    counters: dict[str, int]
    wait: list[int]  # per bucket
    run: list[int]
    wait_sum: float = 0.0
    run_sum: float = 0.0

    @classmethod
    def empty(cls) -> Figures:
        return cls({name: 0 for name in COUNTERS}, [0] * _N, [0] * _N)

    @classmethod
    def from_row(cls, counts: Sequence[int], wait_sum: float, run_sum: float) -> Figures:
        """Figures from a tally's integers (:data:`ROW_SIZE` of them, as :class:`Tally` lays them out)."""
        return cls({name: counts[i] for i, name in enumerate(OUTCOMES)},
                   list(counts[_WAIT0:_RUN0]), list(counts[_RUN0:ROW_SIZE]), wait_sum, run_sum)

    def add(self, other: Figures) -> None:
        for name, value in other.counters.items():
            self.counters[name] = self.counters.get(name, 0) + value
        self.wait = [a + b for a, b in zip(self.wait, other.wait)]
        self.run = [a + b for a, b in zip(self.run, other.run)]
        self.wait_sum += other.wait_sum
        self.run_sum += other.run_sum

    def is_empty(self) -> bool:
        return not any(self.counters.values()) and not any(self.wait) and not any(self.run)

    def fields(self) -> dict[str, float]:
        """Non-zero hash fields to add into a stats hash."""
        fields: dict[str, float] = {name: value for name, value in self.counters.items() if value}
        for kind, buckets in (("wait", self.wait), ("run", self.run)):
            for index, count in enumerate(buckets):
                if count:
                    fields[f"{kind}:{bound_label(index)}"] = count
        if self.wait_sum:
            fields["wait:sum"] = self.wait_sum
        if self.run_sum:
            fields["run:sum"] = self.run_sum
        return fields

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> Figures:
        figures = cls.empty()
        labels = {bound_label(i): i for i in range(_N)}
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else field
            kind, _, label = name.partition(":")
            if not label:
                figures.counters[name] = int(float(value))
            elif label == "sum":
                setattr(figures, f"{kind}_sum", float(value))
            elif kind in HISTOGRAMS and label in labels:
                getattr(figures, kind)[labels[label]] += int(float(value))
        return figures

    def percentile(self, kind: str, q: float) -> Optional[float]:
        """The ``q`` quantile (0..1) of ``wait`` or ``run``, interpolated within its bucket."""
        buckets = getattr(self, kind)
        total = sum(buckets)
        if not total:
            return None
        rank = q * total
        seen = 0
        for index, count in enumerate(buckets):
            if count and seen + count >= rank:
                low = BOUNDS[index - 1] if index else 0.0
                high = BOUNDS[index]
                if high == math.inf:
                    return low
                return low + (high - low) * (rank - seen) / count
            seen += count
        return BOUNDS[-2]

    def mean(self, kind: str) -> Optional[float]:
        total = sum(getattr(self, kind))
        return getattr(self, f"{kind}_sum") / total if total else None


# Producers count `queued` and managers `requeued` per job, knowing neither
# the task nor, for requeued, the queue: per task and per queue they are not kept.
TASK_UNCOUNTED = ("queued", "requeued")


@dataclass(frozen=True)
class Scope:
    """Whose figures: all managers (the default), one ``manager``, one ``task`` or one named ``queue``.

    Tasks and queues are kept over all managers only, and without ``queued``
    and ``requeued`` (see :data:`TASK_UNCOUNTED`).
    """

    manager: Optional[str] = None
    task: Optional[str] = None
    queue: Optional[str] = None

    def __post_init__(self) -> None:
        # Checked here, so a bad scope is one line before any key is built.
        if self.task is not None and self.queue is not None:
            raise ConfigError("figures are kept per task or per queue, not per task and queue: "
                              "name one of them")
        if (self.task is not None or self.queue is not None) and self.manager:
            raise ConfigError("figures per task and per queue are kept over all managers only")
        if self.queue == SHARED_QUEUE:
            raise ConfigError("the shared queue all:jobs has no figures of its own (the overall "
                              "figures cover every job); name a named queue")
        if self.task is not None:
            validate_task_name(self.task)
        if self.queue is not None:
            validate_queue_name(self.queue)

    def key(self, keys: Keys, period: str, n: int) -> str:
        """The hash holding this scope's figures of period ``n``."""
        if self.task is not None:
            return keys.task_stats(self.task, period, n)
        if self.queue is not None:
            return keys.queue_stats(self.queue, period, n)
        return keys.manager_stats(self.manager, period, n) if self.manager else keys.all_stats(period, n)

    @property
    def label(self) -> str:
        """How ``qw-client stats`` names it: "all managers", "box", "task mail.send", "queue emails"."""
        if self.task is not None:
            return f"task {self.task}"
        if self.queue is not None:
            return f"queue {self.queue}"
        return self.manager or "all managers"

    @property
    def uncounted(self) -> tuple[str, ...]:
        """Counters this scope does not keep (shown as none, not as 0)."""
        return TASK_UNCOUNTED if self.task is not None or self.queue is not None else ()


ScopeLike = Union[Scope, str, None]  # a manager's name, or None, is that manager's scope, or all


def as_scope(scope: ScopeLike) -> Scope:
    """A :class:`Scope` from a Scope, a manager name or None (all managers)."""
    return scope if isinstance(scope, Scope) else Scope(manager=scope)


def read(client: redis.Redis, keys: Keys, scope: ScopeLike, period: str, count: int,
         now: Optional[float] = None) -> list[tuple[int, Figures]]:
    """The last ``count`` periods (current one last) of ``scope`` as (period start, figures)."""
    now = time.time() if now is None else now
    seconds = PERIOD_SECONDS[period]
    first = int(now // seconds) - count + 1
    numbers = range(first, first + count)
    whose = as_scope(scope)
    pipe = client.pipeline(transaction=False)
    for n in numbers:
        pipe.hgetall(whose.key(keys, period, n))
    return [(n * seconds, Figures.from_hash(raw)) for n, raw in zip(numbers, pipe.execute())]


def total(periods: Sequence[tuple[int, Figures]]) -> Figures:
    """The sum of some periods from :func:`read`."""
    figures = Figures.empty()
    for _start, period in periods:
        figures.add(period)
    return figures


WINDOWS_MINUTES = (1, 5, 15, 60)


def summary(figures: Figures, seconds: float, uncounted: Sequence[str] = ()) -> dict[str, Any]:
    """What ``qw-client stats`` shows for one span of ``seconds``; ``uncounted`` counters are None."""
    counters = figures.counters
    settled = sum(counters.get(name, 0) for name in OUTCOMES)
    row: dict[str, Any] = {name: None if name in uncounted else counters.get(name, 0) for name in COUNTERS}
    row["jobs_per_s"] = round(settled / seconds, 2) if seconds > 0 else 0.0
    row["failure_rate"] = round((counters.get("failed", 0) + counters.get("retried", 0)) / settled, 4) \
        if settled else None
    for kind in HISTOGRAMS:
        row[kind] = {f"p{round(q * 100)}": _rounded(figures.percentile(kind, q)) for q in (0.5, 0.9, 0.99)}
        row[kind]["mean"] = _rounded(figures.mean(kind))
    return row


def report(client: redis.Redis, keys: Keys, scope: ScopeLike = None,
           history: tuple[float, int] = DEFAULT_HISTORY, now: Optional[float] = None) -> dict[str, Any]:
    """Throughput, failures and latency percentiles over the last minutes, hours and days, of
    ``scope`` (a :class:`Scope`, a manager's name, or None: all managers)."""
    now = time.time() if now is None else now
    whose = as_scope(scope)
    uncounted = whose.uncounted
    into_minute = now % 60
    minutes = read(client, keys, whose, MINUTE, int(history[0] * 60) + 1, now)
    windows: dict[str, Any] = {}
    spans = [w for w in WINDOWS_MINUTES if w < history[0] * 60] + [int(history[0] * 60)]
    for span in spans:
        # The current, partial minute and the `span` whole minutes before it.
        figures = total(minutes[-(span + 1):])
        label = f"{span} min" if span < 60 else f"{span // 60} h"
        windows[label] = summary(figures, span * 60 + into_minute, uncounted)
    days = []
    into_day = now % 86400
    for start, figures in reversed(read(client, keys, whose, DAY, int(history[1]), now)):
        elapsed = into_day if start + 86400 > now else 86400
        days.append({"day": time.strftime("%Y-%m-%d", time.gmtime(start)),
                     **summary(figures, elapsed, uncounted)})
    return {"scope": whose.label, "history_hours": history[0], "history_days": history[1],
            "windows": windows, "days": days}


def _rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 6)


def recent(client: redis.Redis, keys: Keys, scope: ScopeLike = None, minutes: int = 1,
           now: Optional[float] = None) -> dict[str, Any]:
    """:func:`summary` of the last ``minutes`` whole minutes and the current one."""
    now = time.time() if now is None else now
    whose = as_scope(scope)
    return summary(total(read(client, keys, whose, MINUTE, minutes + 1, now)), minutes * 60 + now % 60,
                   whose.uncounted)
