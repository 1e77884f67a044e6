"""Run the Redis steps of a manager's loop so that one that fails cannot take the manager down."""

from __future__ import annotations

import logging
from typing import Any, Callable

from .connection import is_transient

log = logging.getLogger("qw.manager")


class Guard:
    """Runs a step; on trouble logs it and returns None, and the next tick tries again.

    Connection trouble is logged once per outage, and once when it ends.
    """

    def __init__(self, manager: str) -> None:
        self.manager = manager
        self.outage = False

    def __call__(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.step(getattr(call, "__name__", str(call)), call, *args, **kwargs)

    def step(self, label: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``call``; ``label`` names it in the log if it fails."""
        try:
            result = call(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc):
                log.exception("manager %s: %s failed", self.manager, label)
                return None
            if not self.outage:
                log.warning("manager %s: Redis unavailable (%s)", self.manager, exc)
                self.outage = True
            return None
        if self.outage:
            log.warning("manager %s: Redis reachable again", self.manager)
            self.outage = False
        return result
