"""The text a scrape gets: this process's metrics (or every process's, in
multiprocess mode) and, from the API, what Postgres and Redis know now.

Two ways to see the workers' metrics (docs/operations.md, "Metrics"):

- **A listener per worker** (``GENSTUDIO_WORKER_METRICS_PORT``): each worker serves
  its own metrics on that port (``serve``); Prometheus scrapes every worker and
  every API process. Works across hosts and containers.
- **Multiprocess mode** (``PROMETHEUS_MULTIPROC_DIR``, set before the processes
  start, on a directory they all share and that is emptied at each deploy): every
  process writes its values to files there and any API process's ``/metrics`` sums
  them all. Needs the processes on one host (or one shared volume).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from genstudio.adapters.prometheus.metrics import PREFIX
from genstudio.core.services.monitoring import QueueSnapshot

CONTENT_TYPE = CONTENT_TYPE_LATEST


class SnapshotCollector(Collector):
    """Gauges of one ``QueueSnapshot`` (read by the caller just before the scrape)."""

    def __init__(self, snapshot: QueueSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        snap = self.snapshot
        up = GaugeMetricFamily(
            f"{PREFIX}_queue_stats_up",
            "1 when this scrape could read the jobs' state from Postgres, else 0",
        )
        up.add_metric([], 0.0 if snap.stats is None else 1.0)
        yield up
        if snap.stats is not None:
            yield from _stats_families(snap)
        streams_up = GaugeMetricFamily(
            f"{PREFIX}_queue_streams_up",
            "1 when this scrape could read the queue's Redis streams, 0 when Redis did "
            "not answer (absent without a Redis queue)",
        )
        if snap.streams is not None or snap.streams_error is not None:
            streams_up.add_metric([], 0.0 if snap.streams is None else 1.0)
        yield streams_up
        messages = GaugeMetricFamily(
            f"{PREFIX}_queue_stream_messages",
            "Wake-up messages in each Redis stream",
            labels=["stream"],
        )
        pending = GaugeMetricFamily(
            f"{PREFIX}_queue_stream_pending",
            "Wake-up messages delivered to a worker and not yet acknowledged, per stream",
            labels=["stream"],
        )
        for s in snap.streams or []:
            messages.add_metric([s.name], float(s.length))
            pending.add_metric([s.name], float(s.pending))
        yield messages
        yield pending


def _stats_families(snap: QueueSnapshot) -> Iterator[Metric]:
    assert snap.stats is not None
    jobs = GaugeMetricFamily(
        f"{PREFIX}_jobs",
        "Jobs now, by kind and state: queued (waiting, retries included), due (queued "
        "and past any retry delay), in_flight (at a provider), dead_lettered (failed "
        "after their last attempt, not re-run)",
        labels=["kind", "state"],
    )
    depth = GaugeMetricFamily(
        f"{PREFIX}_queue_depth",
        "Queued jobs by kind and priority (free 0, pro 5, premium 9)",
        labels=["kind", "priority"],
    )
    due = GaugeMetricFamily(
        f"{PREFIX}_queue_due",
        "Queued jobs that are due, by kind and priority",
        labels=["kind", "priority"],
    )
    oldest = GaugeMetricFamily(
        f"{PREFIX}_queue_oldest_wait_seconds",
        "How long the longest-waiting due job of a kind has waited since it became due",
        labels=["kind"],
    )
    recent = GaugeMetricFamily(
        f"{PREFIX}_jobs_recent",
        "Jobs that succeeded or failed within the window (5m, 1h), by kind, from Postgres",
        labels=["kind", "outcome", "window"],
    )
    queued: dict[str, int] = {}
    due_of: dict[str, int] = {}
    waits: dict[str, float] = {}
    for d in snap.stats.depths:
        priority = str(d.priority)
        depth.add_metric([d.kind, priority], float(d.queued))
        due.add_metric([d.kind, priority], float(d.due))
        queued[d.kind] = queued.get(d.kind, 0) + d.queued
        due_of[d.kind] = due_of.get(d.kind, 0) + d.due
        waits[d.kind] = max(waits.get(d.kind, 0.0), d.oldest_waiting_seconds)
    kinds = {k.kind: k for k in snap.stats.kinds}
    for kind in sorted(set(kinds) | set(queued)):
        jobs.add_metric([kind, "queued"], float(queued.get(kind, 0)))
        jobs.add_metric([kind, "due"], float(due_of.get(kind, 0)))
        oldest.add_metric([kind], waits.get(kind, 0.0))
        stats = kinds.get(kind)
        if stats is not None:
            jobs.add_metric([kind, "in_flight"], float(stats.in_flight))
            jobs.add_metric([kind, "dead_lettered"], float(stats.dead_letters))
            for window, count in stats.succeeded.items():
                recent.add_metric([kind, "succeeded", window], float(count))
            for window, count in stats.failed.items():
                recent.add_metric([kind, "failed", window], float(count))
    yield from (jobs, depth, due, oldest, recent)


def render(snapshot: QueueSnapshot | None, *, multiprocess_dir: str | None = None) -> bytes:
    """The scrape's text: the process's metrics (every process's from
    ``multiprocess_dir``), then the snapshot's gauges when given."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        if snapshot is not None:
            registry.register(SnapshotCollector(snapshot))
        return generate_latest(registry)
    text = generate_latest(REGISTRY)
    if snapshot is not None:
        extra = CollectorRegistry()
        extra.register(SnapshotCollector(snapshot))
        text += generate_latest(extra)
    return text


class MetricsListener:
    """A worker's own metrics on ``host:port`` (``/metrics``), served from a thread."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(port: int, host: str = "0.0.0.0") -> MetricsListener:
    """Serve this process's registry on ``host:port`` (0: any free port)."""
    server, thread = start_http_server(port, addr=host)
    return MetricsListener(server, thread)


def process_exited(pid: int, multiprocess_dir: str | None) -> None:
    """In multiprocess mode, forget an exited process's live gauges (its breakers)."""
    if multiprocess_dir:
        mark_process_dead(pid, path=multiprocess_dir)  # type: ignore[no-untyped-call]
