"""A manager's Prometheus endpoint (``qw-manager --metrics-port``).

Served from the manager's supervising loop, one request at a time, with no
thread of its own: the manager forks its workers while single-threaded.
Figures are read at scrape time: counts from the workers' shared memory,
queue depths from Redis. Job counters and histograms carry ``task`` and
``queue`` labels, bounded by the tasks and named queues the manager loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from .client import Client
from .exceptions import ConfigError
from .keeper import Keeper
from .keys import SHARED_QUEUE
from .pool import Pool
from .process import Switch
from .stats import bound_label

REQUEST_TIMEOUT = 2.0  # seconds a scraper gets to send its request: the loop waits for it


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@dataclass
class Source:
    """What the metrics are read from: a manager's parts."""

    name: str
    client: Client
    pool: Pool
    stats: Keeper
    paused: Switch
    collect_stats: Callable[[], None]  # takes the workers' latest counts into ``stats``


class _Collector:
    def __init__(self, manager: Source) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        manager = self.manager
        manager.collect_stats()
        yield from self._jobs()
        labels = ["manager"]
        name = [manager.name]
        now = time.time()
        slots = manager.pool.slots.values()
        busy = sum(1 for slot in slots if slot.process.shared.started.value)
        workers = GaugeMetricFamily("qw_workers", "Worker processes by state", labels=["manager", "state"])
        workers.add_metric([manager.name, "busy"], busy)
        workers.add_metric([manager.name, "idle"], len(slots) - busy)
        yield workers
        paused = GaugeMetricFamily("qw_paused", "1 while the manager is paused", labels=labels)
        paused.add_metric(name, int(bool(manager.paused)))
        yield paused
        age = GaugeMetricFamily("qw_worker_last_claim_age_seconds",
                                "Seconds since the worker's last successful round trip to Redis "
                                "(claims included); grows while it is stuck or cut off",
                                labels=["manager", "worker"])
        for slot in slots:
            last = slot.process.shared.last_ok.value
            age.add_metric([manager.name, slot.process.name], max(0.0, now - last))
        yield age
        yield from self._depths()

    def _jobs(self) -> Iterator[Metric]:
        """The job counters and histograms, one series per (task, named queue) that counted anything.

        Each job counts in exactly one series, so they add up; plain jobs
        outside named queues (and requeued jobs, counted without their task)
        have task="" and queue="", which Prometheus stores as the unlabelled
        series of before. Bounded by the tasks and queues the manager loaded.
        """
        manager = self.manager
        labels = ["manager", "task", "queue"]
        series = sorted(manager.stats.series.items())
        for counter, text in (("processed", "Jobs whose target returned"),
                              ("failed", "Jobs that failed for good (to the failed list)"),
                              ("retried", "Failed runs scheduled for another attempt"),
                              ("requeued", "Jobs put back in their queue after their worker died")):
            family = CounterMetricFamily(f"qw_jobs_{counter}", text, labels=labels)
            for (task, queue), figures in series:
                family.add_metric([manager.name, task, queue], figures.counters.get(counter, 0))
            yield family
        for kind, text in (("run", "Time jobs ran, target call to return"),
                           ("wait", "Time jobs waited, queued to started")):
            family = HistogramMetricFamily(f"qw_job_{kind}_seconds", text, labels=labels)
            for (task, queue), figures in series:
                cumulative, buckets = 0, []
                for index, count in enumerate(getattr(figures, kind)):
                    cumulative += count
                    buckets.append((bound_label(index), cumulative))
                family.add_metric([manager.name, task, queue], buckets, getattr(figures, f"{kind}_sum"))
            yield family

    def _depths(self) -> Iterator[Metric]:
        manager = self.manager
        keys = manager.client.keys
        up = GaugeMetricFamily("qw_redis_up", "1 when Redis answered this scrape", labels=["manager"])
        served = manager.pool.settings.queues or ()
        named = [keys.named_queue(q) for q, _weight in served if q != SHARED_QUEUE]
        try:
            pipe = manager.client.redis.pipeline(transaction=False)
            for key in (keys.all_jobs, keys.manager_jobs(manager.name), *named):
                pipe.llen(key)
            pipe.zcard(keys.all_scheduled)
            pipe.llen(keys.all_failed)
            *lengths, scheduled, failed = pipe.execute()
        except redis.RedisError:
            up.add_metric([manager.name], 0)
            yield up
            return
        up.add_metric([manager.name], 1)
        yield up
        depth = GaugeMetricFamily("qw_queue_depth", "Jobs waiting in a queue", labels=["queue"])
        for key, length in zip((keys.all_jobs, keys.manager_jobs(manager.name), *named), lengths):
            depth.add_metric([key], length)
        yield depth
        waiting = GaugeMetricFamily("qw_scheduled_jobs", "Jobs waiting for a retry (all:scheduled)")
        waiting.add_metric([], scheduled)
        yield waiting
        dead = GaugeMetricFamily("qw_failed_jobs", "Jobs in the failed list (all:failed)")
        dead.add_metric([], failed)
        yield dead


class MetricsServer:
    """An HTTP server on ``host:port`` answering ``/metrics``, driven by the manager's loop."""

    def __init__(self, manager: Source, host: str, port: int) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(manager))  # type: ignore[arg-type]
        try:
            self._server: WSGIServer = make_server(host, port, make_wsgi_app(registry),
                                                   handler_class=_QuietHandler)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        self._server.timeout = 0
        address, bound = self._server.server_address[:2]
        self.url = f"http://{address}:{bound}/metrics"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def fileno(self) -> int:
        return self._server.fileno()

    def handle(self) -> None:
        """Answer one waiting request (call when the socket is readable)."""
        self._server.handle_request()

    def close(self) -> None:
        self._server.server_close()

