"""Job and worker settings: ``GENSTUDIO_WORKER_*``, ``GENSTUDIO_JOB_TIMEOUT*``, the
queue's leases, retries, reconciler and circuit breaker, and the GPU calls' timing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from genstudio.core.model.pricing import ModelKind
from genstudio.entrypoints.settings.env import Env


class JobSettings(msgspec.Struct, frozen=True, kw_only=True):
    PREFIXES: ClassVar[tuple[str, ...]] = (
        "GENSTUDIO_WORKER_",
        "GENSTUDIO_STOP_GRACE",
        "GENSTUDIO_POLL_INTERVAL",
        "GENSTUDIO_JOB_TIMEOUT",
        "GENSTUDIO_PER_USER_IN_FLIGHT",
        "GENSTUDIO_LEASE_SECONDS",
        "GENSTUDIO_RETRY_",
        "GENSTUDIO_RECONCILE_INTERVAL",
        "GENSTUDIO_REDELIVER_AFTER",
        "GENSTUDIO_BREAKER_",
        "GENSTUDIO_LOCAL_GPU_SECONDS",
        "GENSTUDIO_GPU_TIMEOUT",
    )

    worker_concurrency: int = 4
    stop_grace: float = 30.0  # seconds a stopping worker lets its jobs run on
    poll_interval: float = 0.5
    job_timeout: float = 900.0  # seconds; the default of every job kind
    # per kind (GENSTUDIO_JOB_TIMEOUT_<KIND>); a kind not named keeps the core's default
    job_timeouts: dict[str, float] = msgspec.field(default_factory=dict)
    per_user_in_flight: int = 2
    lease_seconds: float = 30.0
    retry_base_delay: float = 2.0
    retry_max_delay: float = 300.0
    reconcile_interval: float = 5.0
    redeliver_after: float = 15.0  # a due job not picked up this long gets another wake-up
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    local_gpu_seconds: float = 0.0  # the preview renderer's minimum time per job
    gpu_timeout: float = 30.0  # seconds for each HTTP call to a GPU provider
    # a worker serves its own Prometheus metrics on this port when set (issue #20;
    # docs/operations.md: or PROMETHEUS_MULTIPROC_DIR on one host)
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "0.0.0.0"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobSettings:
        e = Env(env)
        return cls(
            worker_concurrency=e.integer("GENSTUDIO_WORKER_CONCURRENCY", 4),
            stop_grace=e.number("GENSTUDIO_STOP_GRACE", 30.0),
            poll_interval=e.number("GENSTUDIO_POLL_INTERVAL", 0.5),
            job_timeout=e.number("GENSTUDIO_JOB_TIMEOUT", 900.0),
            job_timeouts={
                kind.value: e.number(f"GENSTUDIO_JOB_TIMEOUT_{kind.name}", 0.0)
                for kind in ModelKind
                if e.opt(f"GENSTUDIO_JOB_TIMEOUT_{kind.name}") is not None
            },
            per_user_in_flight=e.integer("GENSTUDIO_PER_USER_IN_FLIGHT", 2),
            lease_seconds=e.number("GENSTUDIO_LEASE_SECONDS", 30.0),
            retry_base_delay=e.number("GENSTUDIO_RETRY_BASE_DELAY", 2.0),
            retry_max_delay=e.number("GENSTUDIO_RETRY_MAX_DELAY", 300.0),
            reconcile_interval=e.number("GENSTUDIO_RECONCILE_INTERVAL", 5.0),
            redeliver_after=e.number("GENSTUDIO_REDELIVER_AFTER", 15.0),
            breaker_failures=e.integer("GENSTUDIO_BREAKER_FAILURES", 5),
            breaker_cooldown=e.number("GENSTUDIO_BREAKER_COOLDOWN", 30.0),
            local_gpu_seconds=e.number("GENSTUDIO_LOCAL_GPU_SECONDS", 0.0),
            gpu_timeout=e.number("GENSTUDIO_GPU_TIMEOUT", 30.0),
            worker_metrics_port=_port(e, "GENSTUDIO_WORKER_METRICS_PORT"),
            worker_metrics_host=e.text("GENSTUDIO_WORKER_METRICS_HOST", "0.0.0.0"),
        )


def _port(e: Env, name: str) -> int | None:
    if e.opt(name) is None:
        return None
    port = e.integer(name, 0)
    if not 0 < port < 65536:
        raise SystemExit(f"{name} must be a TCP port (1-65535), not {port}")
    return port
