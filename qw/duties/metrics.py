"""Answer Prometheus scrapes from the supervising loop (``qw-manager --metrics-port``)."""

from __future__ import annotations

from typing import Optional

from ..metrics import MetricsServer
from . import Duty


class ServeMetrics(Duty):
    name = "serve_metrics"

    def __init__(self, server: MetricsServer) -> None:
        self.server = server

    def fileno(self) -> Optional[int]:
        return self.server.fileno()

    def on_readable(self) -> None:
        self.server.handle()

    def close(self) -> None:
        self.server.close()
