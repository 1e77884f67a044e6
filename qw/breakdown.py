"""A worker's counts per task and per named queue, in memory shared with its manager.

A manager knows before it forks a worker which tasks it loaded and which
named queues it serves, so the worker's :class:`Breakdown` is allocated
then: one row of counters (laid out as a :class:`~qw.stats.Tally`) for each
pair (task, named queue), plus a row "no task" and a column "no named
queue". Every job the worker settles lands in exactly one row, so the rows
add up to the worker's totals, and Prometheus series labelled by task and
queue add up to the unlabelled figures of before.

"No task" is a plain job, or an import path that names no task the manager
loaded; "no named queue" is a job taken from ``all:jobs``, the manager's
queue or the worker's own list. Both are bounded by what the manager
loaded: job data can never add a row. A manager with neither tasks nor
named queues gives its workers no breakdown at all, and a job then costs
one attribute check more than before.
"""

from __future__ import annotations

import array
import bisect
import multiprocessing
from typing import Optional, Sequence

from .keys import SHARED_QUEUE, Keys
from .stats import BOUNDS, OUTCOMES, ROW_SIZE, Figures

Label = tuple[str, str]  # (task name or "", named queue or "")

_WAIT0 = len(OUTCOMES)
_RUN0 = _WAIT0 + len(BOUNDS)


class Breakdown:
    """Counts by (task, named queue) of one worker; one writer (the worker), one reader (its manager).

    ``tasks`` are the task names the manager loaded, ``queues`` its named
    queues as (name, key) pairs. :meth:`row` finds a job's row (two
    dictionary look-ups), :meth:`record` counts into it, and the manager's
    :meth:`deltas` returns what changed since it last asked.
    """

    def __init__(self, tasks: Sequence[str], queues: Sequence[tuple[str, str]]) -> None:
        names = [name for name, _key in queues]
        self.labels: list[Label] = [(task, queue) for task in ("", *tasks) for queue in ("", *names)]
        width = len(queues) + 1
        # A row number is task offset + queue column: a missing task or queue adds 0.
        self._task_rows = {task: (i + 1) * width for i, task in enumerate(tasks)}
        self._queue_columns = {key: i + 1 for i, (_name, key) in enumerate(queues)}
        ctx = multiprocessing.get_context("fork")
        self.counts = ctx.Array("q", len(self.labels) * ROW_SIZE, lock=False)
        self.sums = ctx.Array("d", len(self.labels) * 2, lock=False)  # wait, run: seconds, per row
        # Jobs settled per row, written last by each record: the manager reads
        # the counters of only the rows whose count moved.
        self.settled = ctx.Array("q", len(self.labels), lock=False)
        # The manager's side (its copy of these never reaches the worker): what it read last.
        self._seen_settled = bytes(self.settled)
        self._seen: dict[int, tuple[list[int], float, float]] = {}  # row -> counts, wait sum, run sum

    @classmethod
    def build(cls, tasks: Sequence[str], queues: Sequence[str], keys: Keys) -> Optional[Breakdown]:
        """The breakdown for a worker of these tasks and queues, or None when there is nothing to
        break down (no task, no named queue: plain jobs pay nothing).

        ``all`` among ``queues`` is the shared ``all:jobs``, which is no named queue here.
        """
        named = [(name, keys.named_queue(name)) for name in dict.fromkeys(queues) if name != SHARED_QUEUE]
        if not tasks and not named:
            return None
        return cls(sorted(set(tasks)), named)

    def row(self, task: Optional[str], origin: Optional[str]) -> int:
        """The row of a job of task ``task`` (a loaded name, else anything) taken from key ``origin``."""
        return self._task_rows.get(task, 0) + self._queue_columns.get(origin, 0)  # type: ignore[arg-type]

    def record(self, row: int, outcome: int, wait: Optional[float], run: float) -> None:
        """:meth:`qw.stats.Tally.record`, into ``row``."""
        counts = self.counts
        base = row * ROW_SIZE
        counts[base + outcome] += 1
        if wait is not None:
            wait = max(0.0, wait)
            counts[base + _WAIT0 + bisect.bisect_left(BOUNDS, wait)] += 1
            self.sums[2 * row] += wait
        counts[base + _RUN0 + bisect.bisect_left(BOUNDS, run)] += 1
        self.sums[2 * row + 1] += run
        self.settled[row] += 1  # last: a row whose count moved has its figures written

    def deltas(self) -> list[tuple[Label, Figures]]:
        """What each row counted since the last call, for the rows that changed (the manager's side).

        An idle worker costs one copy of its per-row job counts; a busy one,
        a look at each row's count and a read of the rows that moved. A row
        read while a job is being recorded gives the rest next time: each
        delta is taken against what was read before, row by row.
        """
        raw = bytes(self.settled)
        if raw == self._seen_settled:
            return []
        now, before = array.array("q", raw), array.array("q", self._seen_settled)
        self._seen_settled = raw
        changed = []
        for row in [i for i, (a, b) in enumerate(zip(now, before)) if a != b]:
            start = row * ROW_SIZE
            counts = self.counts[start:start + ROW_SIZE]
            wait_sum, run_sum = self.sums[2 * row], self.sums[2 * row + 1]
            old_counts, old_wait, old_run = self._seen.get(row, ([0] * ROW_SIZE, 0.0, 0.0))
            self._seen[row] = (counts, wait_sum, run_sum)
            delta = [a - b for a, b in zip(counts, old_counts)]
            figures = Figures.from_row(delta, wait_sum - old_wait, run_sum - old_run)
            changed.append((self.labels[row], figures))
        return changed

    def __len__(self) -> int:
        """Rows in the table."""
        return len(self.labels)
