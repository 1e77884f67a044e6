"""Hear remote commands (``qw-client scale``, ``reload``...) the moment they arrive."""

from __future__ import annotations

from collections import deque
from typing import Optional

from ..control import Command, Inbox
from . import Duty


class ControlInbox(Duty):
    """Its socket carries a BLPOP on ``<manager>:control`` in flight; what it pops joins the requests
    the loop carries out."""

    name = "control_inbox"

    def __init__(self, inbox: Inbox, requests: deque[Command]) -> None:
        self.inbox = inbox
        self.requests = requests

    def fileno(self) -> Optional[int]:
        return self.inbox.fileno()

    def on_readable(self) -> None:
        self.requests.extend(self.inbox.take())

    def close(self) -> None:
        self.inbox.close()
