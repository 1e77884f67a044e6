"""The process-wide client that tasks, signatures and chains queue through when given none."""

from __future__ import annotations

import threading
from typing import Any, Optional

_default_client: Optional[Any] = None
_default_lock = threading.Lock()


def set_default_client(client: Optional[Any]) -> None:
    """The client ``delay``, ``send_with``, ``map`` and ``qw.chain`` use when given none (None: lazy)."""
    global _default_client
    with _default_lock:
        _default_client = client


def default_client() -> Any:
    """The process-wide client: the one set, else a ``qw.Client()`` made now (``$QW_REDIS_URL``)."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            import qw  # at call time: qw imports the modules that import this one

            _default_client = qw.Client()
        return _default_client


def peek_default_client() -> Optional[Any]:
    """The client set, or None when none is (nothing is made)."""
    with _default_lock:
        return _default_client
