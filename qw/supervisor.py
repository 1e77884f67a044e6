"""The manager's supervising loop: the one ``wait()`` of the manager, and what it dispatches to.

It waits on every worker's process sentinel (a death is seen at once), the
wake pipe (signals, requests from other threads), each duty's socket (the
control inbox, the metrics endpoint) and the time the next duty or
replacement is due; then it hands each event to its part. Nothing else in
the manager blocks.
"""

from __future__ import annotations

import time
from multiprocessing.connection import wait
from typing import Sequence

from .commands import Commands
from .duties import Duty
from .guard import Guard
from .lifecycle import Lifecycle
from .pool import Pool


class Supervisor:
    """Runs ``duties`` when due, carries out requests, replaces dead workers, until a stop."""

    def __init__(self, pool: Pool, duties: Sequence[Duty], commands: Commands, lifecycle: Lifecycle,
                 guard: Guard) -> None:
        self.pool = pool
        self.duties = duties
        self.commands = commands
        self.lifecycle = lifecycle
        self.guard = guard
        self._due = {duty: time.monotonic() for duty in duties if duty.every is not None}

    def run(self) -> None:
        lifecycle, pool = self.lifecycle, self.pool
        waker = lifecycle.waker.fileno()
        while not lifecycle.stopping:
            self.commands.handle_pending()
            if lifecycle.stopping:
                break
            respawn_in = pool.handle_dead()
            next_duty = self._run_due()
            timeout = max(0.0, min(next_duty - time.monotonic(), respawn_in))
            sentinels = pool.sentinels()
            sockets = {fd: duty for duty in self.duties if (fd := duty.fileno()) is not None}
            for ready in wait([*sentinels, waker, *sockets], timeout=timeout):
                if ready == waker:
                    lifecycle.waker.drain()
                elif ready in sockets:
                    duty = sockets[ready]
                    duty.on_readable()
                    if duty in self._due:  # a duty with both: its socket may bring its next run forward
                        self._due[duty] = time.monotonic() + (duty.every or 0.0)
                else:
                    pool.on_death(sentinels[ready])

    def _run_due(self) -> float:
        """Run the periodic duties that are due, in their order; when the next one is due."""
        for duty, due in self._due.items():
            if time.monotonic() >= due:
                self.guard.step(duty.name, duty.run)
                self._due[duty] = time.monotonic() + (duty.every or 0.0)
        return min(self._due.values(), default=float("inf"))

    def close(self) -> None:
        for duty in self.duties:
            duty.close()
