"""Prometheus: the metrics port recorded with ``prometheus_client`` (``metrics.py``),
and what a scrape reads (``exposition.py``)."""

from genstudio.adapters.prometheus.exposition import (
    CONTENT_TYPE,
    MetricsListener,
    process_exited,
    render,
    serve,
)
from genstudio.adapters.prometheus.metrics import PrometheusMetrics, observe_request

__all__ = [
    "CONTENT_TYPE",
    "MetricsListener",
    "PrometheusMetrics",
    "observe_request",
    "process_exited",
    "render",
    "serve",
]
