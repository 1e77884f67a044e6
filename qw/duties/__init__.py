"""A manager's duties: small chores its supervising loop runs when due, or when their socket is readable.

A duty is an object with a ``name``; ``every`` (seconds between runs, or
None); ``run()``, called when it is due, inside the loop's :class:`~qw.guard.Guard`
(so a Redis outage is logged once and the next tick tries again); and, for
one driven by a socket, ``fileno()`` (the socket to wait on, or None for
now) and ``on_readable()``. Nothing in a duty may block: the loop is the only
place that waits. The manager lists its duties in ``Manager._duties``; a new
chore is a new file here and one line there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # only for the annotation: options does not import the duties
    from ..options import Settings


class Duty:
    """Base of the duties: periodic (``every``) or driven by a socket (``fileno``), or both."""

    name = "duty"

    @property
    def every(self) -> Optional[float]:
        """Seconds between two runs; None: only when the socket is readable.

        Read after each run, and, for a duty with a socket too, after each
        ``on_readable``, so a duty may ask for its next run at a time of its choosing.
        """
        return None

    def run(self) -> None:
        """The periodic step."""

    def fileno(self) -> Optional[int]:
        """A socket to wait on, or None (none, or none for now)."""
        return None

    def on_readable(self) -> None:
        """Called once the socket from :meth:`fileno` is readable."""

    def close(self) -> None:
        """Release what the duty holds, once the manager has stopped."""


class EveryTick(Duty):
    """A duty run once per manager tick (``heartbeat``); its ``settings`` say how long that is now."""

    settings: Settings

    @property
    def every(self) -> Optional[float]:
        return self.settings.heartbeat_interval
