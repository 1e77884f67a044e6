"""What queuing a task gives back: a handle on the job it became.

Today a handle only knows the job's id (and the client that queued it);
the results issue adds its state and result here, behind the same object,
so code that keeps handles now keeps working then.
"""

from __future__ import annotations

from typing import Any


class JobHandle:
    """The job a task call was queued as.

    ``id`` is the job id (``job:<id>`` in Redis); ``client`` is whatever
    queued it, kept for the look-ups a later release adds. Two handles are
    equal when their ids are; ``str(handle)`` is the id.
    """

    __slots__ = ("id", "client")

    def __init__(self, id: str, client: Any = None) -> None:
        self.id = id
        self.client = client

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def __str__(self) -> str:
        return self.id

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JobHandle):
            return self.id == other.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)
