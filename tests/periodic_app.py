"""A task module with a periodic task, for the tests of @qw.periodic (qw-manager periodic_app)."""

from __future__ import annotations

import os

import qw
import time_app


@qw.periodic(every=0.3, no_overlap=True)
def tick() -> None:
    time_app._note(os.environ.get("QW_TEST_DIR", "/tmp"))
