"""State every part of a manager shares: whether it is stopping, how, its exit code; the wake pipe."""

from __future__ import annotations

import contextlib
import os
import threading


class Waker:
    """A self-pipe: a write from a signal handler or another thread ends the supervising loop's wait."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)

    def fileno(self) -> int:
        return self._r

    def wake(self) -> None:
        """Interrupt the wait (safe in a signal handler; a no-op once closed)."""
        if self._w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._w, b"x")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 512)

    def close(self) -> None:
        w, self._w = self._w, -1
        os.close(w)
        os.close(self._r)


class Lifecycle:
    """Whether the manager is stopping, urgently or to execute itself again, and its exit code."""

    def __init__(self, waker: Waker) -> None:
        self.waker = waker
        self._stop = threading.Event()
        self.urgent = False
        self.reexec = False  # USR2: after stopping, execute this program again under the same name
        self.exit_code = 0

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self, urgent: bool = False) -> None:
        """Ask for a stop (safe in a signal handler); an urgent request also hurries one under way."""
        self.urgent = self.urgent or urgent
        self._stop.set()
        self.waker.wake()

    def fail(self, stop: bool = True) -> None:
        """Exit with code 1, stopping now unless ``stop`` is False."""
        self.exit_code = 1
        if stop:
            self._stop.set()
            self.waker.wake()
