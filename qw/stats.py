"""Counters and histograms: counted in memory by workers, kept in Redis by managers.

A worker counts each job it settles, and its wait (queued to started) and
run time, in shared memory: no round trip is added to a job. Its manager adds
the counts up once a tick and writes them into per-minute and per-day hashes
(``<manager>:stats:<period>:<n>`` and ``all:stats:<period>:<n>``) that expire
after the configured history, so memory in Redis stays bounded. Producers
count ``queued`` in the same hashes from the queuing scripts.

What a manager had counted but not yet written when it died is lost: the
figures are for watching, never for accounting.
"""

from __future__ import annotations

import bisect
import math
import multiprocessing
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import redis

from .keys import Keys

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
        self.counts = ctx.Array("q", _RUN0 + _N, lock=False)
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


class Keeper:
    """A manager's side: add up its workers' tallies, keep totals, write them to Redis."""

    def __init__(self, keys: Keys, manager: str, history: tuple[float, int] = DEFAULT_HISTORY) -> None:
        self.keys = keys
        self.manager = manager
        self.history = history
        self.totals = Figures.empty()  # since this manager started (for Prometheus)
        self.pending = Figures.empty()  # counted, not yet in Redis
        self._seen: dict[int, tuple[list[int], list[float]]] = {}  # id(tally) -> last snapshot

    def collect(self, tallies: Iterable[Tally]) -> None:
        """Take what the workers counted since the last call."""
        for tally in tallies:
            counts, sums = tally.snapshot()
            before_counts, before_sums = self._seen.get(id(tally), ([0] * len(counts), [0.0, 0.0]))
            self._seen[id(tally)] = (counts, sums)
            delta = [a - b for a, b in zip(counts, before_counts)]
            figures = Figures(
                {name: delta[i] for i, name in enumerate(OUTCOMES)},
                delta[_WAIT0:_RUN0], delta[_RUN0:],
                sums[0] - before_sums[0], sums[1] - before_sums[1],
            )
            self._count(figures)

    def forget(self, tally: Tally) -> None:
        """Call after a final :meth:`collect` of a worker that is gone."""
        self._seen.pop(id(tally), None)

    def count_requeued(self, n: int) -> None:
        if n > 0:
            figures = Figures.empty()
            figures.counters["requeued"] = n
            self._count(figures)

    def _count(self, figures: Figures) -> None:
        self.totals.add(figures)
        self.pending.add(figures)

    def flush(self, client: redis.Redis, now: Optional[float] = None) -> None:
        """Add the pending counts into this minute's and day's hashes; kept if Redis fails."""
        if self.pending.is_empty():
            return
        now = time.time() if now is None else now
        pending, self.pending = self.pending, Figures.empty()
        fields = pending.fields()
        pipe = client.pipeline(transaction=True)
        for period, ttl in ((MINUTE, int(self.history[0] * 3600)), (DAY, int(self.history[1] * 86400))):
            n = int(now // PERIOD_SECONDS[period])
            for key in (self.keys.manager_stats(self.manager, period, n), self.keys.all_stats(period, n)):
                for field, value in fields.items():
                    if isinstance(value, float):
                        pipe.hincrbyfloat(key, field, value)
                    else:
                        pipe.hincrby(key, field, value)
                pipe.expire(key, max(ttl, PERIOD_SECONDS[period]))
        try:
            pipe.execute()
        except redis.RedisError:
            pending.add(self.pending)
            self.pending = pending
            raise


def read(client: redis.Redis, keys: Keys, manager: Optional[str], period: str, count: int,
         now: Optional[float] = None) -> list[tuple[int, Figures]]:
    """The last ``count`` periods (current one last) as (period start, figures)."""
    now = time.time() if now is None else now
    seconds = PERIOD_SECONDS[period]
    first = int(now // seconds) - count + 1
    numbers = range(first, first + count)
    pipe = client.pipeline(transaction=False)
    for n in numbers:
        pipe.hgetall(keys.manager_stats(manager, period, n) if manager else keys.all_stats(period, n))
    return [(n * seconds, Figures.from_hash(raw)) for n, raw in zip(numbers, pipe.execute())]


def total(periods: Sequence[tuple[int, Figures]]) -> Figures:
    """The sum of some periods from :func:`read`."""
    figures = Figures.empty()
    for _start, period in periods:
        figures.add(period)
    return figures


WINDOWS_MINUTES = (1, 5, 15, 60)


def summary(figures: Figures, seconds: float) -> dict[str, Any]:
    """What ``qw-client stats`` shows for one span of ``seconds``."""
    counters = figures.counters
    settled = sum(counters.get(name, 0) for name in OUTCOMES)
    row: dict[str, Any] = {name: counters.get(name, 0) for name in COUNTERS}
    row["jobs_per_s"] = round(settled / seconds, 2) if seconds > 0 else 0.0
    row["failure_rate"] = round((counters.get("failed", 0) + counters.get("retried", 0)) / settled, 4) \
        if settled else None
    for kind in HISTOGRAMS:
        row[kind] = {f"p{round(q * 100)}": _rounded(figures.percentile(kind, q)) for q in (0.5, 0.9, 0.99)}
        row[kind]["mean"] = _rounded(figures.mean(kind))
    return row


def report(client: redis.Redis, keys: Keys, manager: Optional[str] = None,
           history: tuple[float, int] = DEFAULT_HISTORY, now: Optional[float] = None) -> dict[str, Any]:
    """Throughput, failures and latency percentiles over the last minutes, hours and days."""
    now = time.time() if now is None else now
    into_minute = now % 60
    minutes = read(client, keys, manager, MINUTE, int(history[0] * 60) + 1, now)
    windows: dict[str, Any] = {}
    spans = [w for w in WINDOWS_MINUTES if w < history[0] * 60] + [int(history[0] * 60)]
    for span in spans:
        # The current, partial minute and the `span` whole minutes before it.
        figures = total(minutes[-(span + 1):])
        label = f"{span} min" if span < 60 else f"{span // 60} h"
        windows[label] = summary(figures, span * 60 + into_minute)
    days = []
    into_day = now % 86400
    for start, figures in reversed(read(client, keys, manager, DAY, int(history[1]), now)):
        elapsed = into_day if start + 86400 > now else 86400
        days.append({"day": time.strftime("%Y-%m-%d", time.gmtime(start)), **summary(figures, elapsed)})
    return {"scope": manager or "all managers", "history_hours": history[0], "history_days": history[1],
            "windows": windows, "days": days}


def _rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 6)


def recent(client: redis.Redis, keys: Keys, manager: Optional[str] = None, minutes: int = 1,
           now: Optional[float] = None) -> dict[str, Any]:
    """:func:`summary` of the last ``minutes`` whole minutes and the current one."""
    now = time.time() if now is None else now
    return summary(total(read(client, keys, manager, MINUTE, minutes + 1, now)), minutes * 60 + now % 60)
