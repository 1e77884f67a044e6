"""When a failed job runs again: attempt limits and exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .exceptions import ConfigError


@dataclass(frozen=True)
class RetryPolicy:
    """A manager's defaults; a job's own ``max_attempts`` wins over them.

    Attempt ``n`` (1-based) that fails is retried after about
    ``backoff * 2 ** (n - 1)`` seconds, capped at ``backoff_cap``, drawn
    between half and all of it so that jobs failing together do not all come
    back at the same instant.
    """

    max_attempts: int = 3
    backoff: float = 1.0
    backoff_cap: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff < 0 or self.backoff_cap < 0:
            raise ConfigError("backoff and backoff_cap must not be negative")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before running a job again after its ``attempt``-th run failed."""
        ceiling = min(self.backoff_cap, self.backoff * 2 ** max(0, attempt - 1))
        return random.uniform(ceiling / 2, ceiling)
