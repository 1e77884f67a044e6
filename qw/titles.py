"""Process titles, so that ``ps`` and ``top`` show what each qw process is doing."""

from __future__ import annotations

import setproctitle


def set_title(title: str) -> None:
    """Set this process's title (its command line as ``ps`` shows it)."""
    setproctitle.setproctitle(title)
