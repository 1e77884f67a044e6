"""A manager's side of the statistics: add up its workers' counts, keep totals, write them to Redis.

Once a tick the manager takes what each worker counted since the last tick
(its :class:`~qw.stats.Tally`, and its :class:`~qw.breakdown.Breakdown` per
task and named queue when it has one) and adds it into this minute's and
today's hashes, in one MULTI: its own and the overall ones, and one per
task and per named queue that counted anything. Each hash gets an EXPIRE of
the history kept. The totals since the manager started feed Prometheus.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Optional, Protocol

import redis

from .breakdown import Breakdown, Label
from .keys import Keys
from .stats import DAY, DEFAULT_HISTORY, MINUTE, PERIOD_SECONDS, Figures, Tally

NO_LABEL: Label = ("", "")  # plain jobs outside named queues, and what is not broken down


class Counted(Protocol):
    """What a worker shares with its manager, as far as counting goes (a ``qw.process.Shared``)."""

    tally: Tally
    breakdown: Optional[Breakdown]


class Keeper:
    """Add up the workers' counts, keep totals, write them to Redis.

    ``totals`` are every job since this manager started; ``series`` the same
    by (task, named queue), whose parts add up to ``totals``: a worker
    without a breakdown, and requeued jobs, count under ("", "").
    """

    def __init__(self, keys: Keys, manager: str, history: tuple[float, int] = DEFAULT_HISTORY) -> None:
        self.keys = keys
        self.manager = manager
        self.history = history
        self.totals = Figures.empty()  # since this manager started (for Prometheus)
        self.series: dict[Label, Figures] = {NO_LABEL: Figures.empty()}  # the same, by (task, queue)
        self.pending = Figures.empty()  # counted, not yet in Redis
        self.pending_tasks: dict[str, Figures] = {}
        self.pending_queues: dict[str, Figures] = {}
        self._seen: dict[int, tuple[list[int], list[float]]] = {}  # id(tally) -> last snapshot

    def collect(self, shares: Iterable[Counted]) -> None:
        """Take what the workers counted since the last call."""
        for share in shares:
            figures = self._delta(share.tally)
            self.totals.add(figures)
            self.pending.add(figures)
            if share.breakdown is None:
                _add(self.series, NO_LABEL, figures)
                continue
            for label, part in share.breakdown.deltas():
                _add(self.series, label, part)
                task, queue = label
                if task:
                    _add(self.pending_tasks, task, part)
                if queue:
                    _add(self.pending_queues, queue, part)

    def _delta(self, tally: Tally) -> Figures:
        counts, sums = tally.snapshot()
        before_counts, before_sums = self._seen.get(id(tally), ([0] * len(counts), [0.0, 0.0]))
        self._seen[id(tally)] = (counts, sums)
        delta = [a - b for a, b in zip(counts, before_counts)]
        return Figures.from_row(delta, sums[0] - before_sums[0], sums[1] - before_sums[1])

    def forget(self, share: Counted) -> None:
        """Call after a final :meth:`collect` of a worker that is gone."""
        self._seen.pop(id(share.tally), None)

    def count_requeued(self, n: int) -> None:
        """Jobs put back after their worker died (counted by the manager, so not per task or queue)."""
        if n > 0:
            figures = Figures.empty()
            figures.counters["requeued"] = n
            self.totals.add(figures)
            self.pending.add(figures)
            _add(self.series, NO_LABEL, figures)

    def flush(self, client: redis.Redis, now: Optional[float] = None) -> None:
        """Add the pending counts into this minute's and day's hashes; kept if Redis fails."""
        if self.pending.is_empty() and not self.pending_tasks and not self.pending_queues:
            return
        now = time.time() if now is None else now
        pending, tasks, queues = self.pending, self.pending_tasks, self.pending_queues
        self.pending, self.pending_tasks, self.pending_queues = Figures.empty(), {}, {}
        pipe = client.pipeline(transaction=True)
        for period, ttl in ((MINUTE, int(self.history[0] * 3600)), (DAY, int(self.history[1] * 86400))):
            n = int(now // PERIOD_SECONDS[period])
            ttl = max(ttl, PERIOD_SECONDS[period])
            if not pending.is_empty():
                for key in (self.keys.manager_stats(self.manager, period, n), self.keys.all_stats(period, n)):
                    _write(pipe, key, pending, ttl)
            for task, figures in tasks.items():
                _write(pipe, self.keys.task_stats(task, period, n), figures, ttl)
            for queue, figures in queues.items():
                _write(pipe, self.keys.queue_stats(queue, period, n), figures, ttl)
        try:
            pipe.execute()
        except redis.RedisError:
            # Nothing was written (MULTI): put it back, with what came meanwhile.
            self._restore(pending, tasks, queues)
            raise

    def _restore(self, pending: Figures, tasks: dict[str, Figures], queues: dict[str, Figures]) -> None:
        pending.add(self.pending)
        self.pending = pending
        for name, figures in self.pending_tasks.items():
            _add(tasks, name, figures)
        for name, figures in self.pending_queues.items():
            _add(queues, name, figures)
        self.pending_tasks, self.pending_queues = tasks, queues


def _add(table: dict[Any, Figures], name: Any, figures: Figures) -> None:
    if figures.is_empty():
        return
    if name not in table:
        table[name] = Figures.empty()
    table[name].add(figures)


def _write(pipe: redis.client.Pipeline, key: str, figures: Figures, ttl: int) -> None:
    for field, value in figures.fields().items():
        if isinstance(value, float):
            pipe.hincrbyfloat(key, field, value)
        else:
            pipe.hincrby(key, field, value)
    pipe.expire(key, ttl)
