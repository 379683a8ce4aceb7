"""Metrics wiring for the processes (issue #20): the breakers' gauge, a worker's own
``/metrics`` listener, and forgetting a process's live gauges when it exits.

How a worker's metrics reach Prometheus is the operator's choice (docs/operations.md):
``GENSTUDIO_WORKER_METRICS_PORT`` (each worker serves its own, scraped one by one) or
``PROMETHEUS_MULTIPROC_DIR`` (one host: every process writes there, the API's
``/metrics`` sums them). Set one, not both: with both, the workers' counts would be
scraped twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from genstudio.adapters.prometheus import MetricsListener, process_exited, serve
from genstudio.core.model.routing import ProviderRouter
from genstudio.entrypoints.settings import Settings
from genstudio.ports.clock import Clock
from genstudio.ports.metrics import Metrics

log = logging.getLogger("genstudio.metrics")

#: seconds between two readings of the breakers by a process that runs jobs
BREAKER_EVERY = 5.0


def record_breakers(router: ProviderRouter, clock: Clock, metrics: Metrics) -> None:
    """Each provider's breaker, as this process's router sees it now."""
    now = clock.now()
    for name in router.providers:
        metrics.breaker_state(name, router.view(name).breaker.state(now).value)


async def _breakers_every(
    router: ProviderRouter, clock: Clock, metrics: Metrics, every: float
) -> None:
    while True:
        try:
            record_breakers(router, clock, metrics)
        except Exception:
            log.exception("reading the breakers failed")
        await asyncio.sleep(every)


@asynccontextmanager
async def job_metrics(
    settings: Settings,
    router: ProviderRouter,
    clock: Clock,
    metrics: Metrics,
    *,
    listen: bool,
    every: float = BREAKER_EVERY,
) -> AsyncIterator[MetricsListener | None]:
    """For as long as a process runs jobs: its breakers read into ``metrics`` every
    ``every`` seconds, and with ``listen`` and ``GENSTUDIO_WORKER_METRICS_PORT`` its
    metrics served on that port (the listener is yielded). On the way out, in
    multiprocess mode, its live gauges are forgotten."""
    listener: MetricsListener | None = None
    port = settings.jobs.worker_metrics_port
    multiproc = settings.observability.prometheus_multiproc_dir
    if listen and port is not None:
        if multiproc:
            log.warning(
                "both GENSTUDIO_WORKER_METRICS_PORT and PROMETHEUS_MULTIPROC_DIR are set: "
                "scrape the workers or the API's sum, not both"
            )
        listener = serve(port, settings.jobs.worker_metrics_host)
        log.info("worker metrics listening", extra={"port": listener.port})
    task = asyncio.create_task(_breakers_every(router, clock, metrics, every))
    try:
        yield listener
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if listener is not None:
            listener.close()
        process_exited(os.getpid(), multiproc)
