"""A task module with a periodic task, for the tests of @qw.periodic (qw-manager periodic_app)."""

from __future__ import annotations

import os

import time_app

import qw


@qw.periodic(every=0.3, no_overlap=True)
def tick() -> None:
    time_app._note(os.environ.get("QW_TEST_DIR", "/tmp"))
