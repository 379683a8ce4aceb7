"""Error tracking and metrics across processes (issue #20): ``SENTRY_*`` and
``PROMETHEUS_MULTIPROC_DIR``. (A worker's metrics port is ``JobSettings``'
``GENSTUDIO_WORKER_METRICS_PORT``.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from genstudio.entrypoints.settings.env import Env


class ObservabilitySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Sentry only when ``SENTRY_DSN`` is set: no error leaves the process otherwise."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("SENTRY_", "PROMETHEUS_MULTIPROC_DIR")

    sentry_dsn: str | None = None
    sentry_environment: str | None = None
    sentry_release: str | None = None
    #: the share of requests and tasks traced (0: errors only)
    sentry_traces_sample_rate: float = 0.0
    #: prometheus_client's multiprocess directory: read by the library itself when it
    #: is imported; here so that /metrics sums every process's files
    prometheus_multiproc_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ObservabilitySettings:
        e = Env(env)
        rate = e.number("SENTRY_TRACES_SAMPLE_RATE", 0.0)
        if not 0.0 <= rate <= 1.0:
            raise SystemExit(f"SENTRY_TRACES_SAMPLE_RATE must be between 0 and 1, not {rate}")
        return cls(
            sentry_dsn=e.opt("SENTRY_DSN"),
            sentry_environment=e.opt("SENTRY_ENVIRONMENT"),
            sentry_release=e.opt("SENTRY_RELEASE"),
            sentry_traces_sample_rate=rate,
            prometheus_multiproc_dir=e.opt("PROMETHEUS_MULTIPROC_DIR"),
        )
