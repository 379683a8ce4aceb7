"""Which GPU providers a deployment has, and how jobs are routed among them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.model.queueing import QueuePolicy, RetryPolicy, TimeoutPolicy
from genstudio.core.model.routing import ProviderRouter
from genstudio.entrypoints.settings import Settings
from genstudio.ports.gpu import GpuProvider


def build_gpus(settings: Settings, local: Callable[[], GpuProvider]) -> dict[str, GpuProvider]:
    """Modal (primary) and Runpod (fallback) when configured, in that order of
    preference; with neither, the embedded default's CPU preview renderer, built (and
    its PyAV and numpy imported) only then."""
    gpus: dict[str, GpuProvider] = {}
    if settings.modal.base_url and settings.modal.token_id and settings.modal.token_secret:
        from genstudio.adapters.gpu_modal import ModalProvider

        gpus["modal"] = ModalProvider(
            base_url=settings.modal.base_url,
            token_id=settings.modal.token_id,
            token_secret=settings.modal.token_secret,
            timeout=settings.jobs.gpu_timeout,
        )
    if settings.runpod.api_key and settings.runpod.endpoints:
        from genstudio.adapters.gpu_runpod import make_runpod_provider

        gpus["runpod"] = make_runpod_provider(
            api_key=settings.runpod.api_key,
            endpoints=settings.runpod.endpoints,  # catalog ids become provider model names
            catalog=DEFAULT_CATALOG,
            base_url=settings.runpod.base_url,
            public_url=settings.server.base_url,
            webhook_secret=settings.runpod.webhook_secret,
            rate_limit=settings.runpod.rate_limit,
            timeout=settings.jobs.gpu_timeout,
            execution_timeout_ms=int(settings.jobs.job_timeout * 1000),
        )
    if not gpus:
        renderer = local()
        gpus[renderer.name] = renderer
    return gpus


def build_router(settings: Settings, gpus: dict[str, GpuProvider]) -> ProviderRouter:
    """Every model goes to the providers in order of preference: the first is primary."""
    return ProviderRouter(
        {},
        default=list(gpus),
        failure_threshold=settings.jobs.breaker_failures,
        cooldown=timedelta(seconds=settings.jobs.breaker_cooldown),
    )


def build_policy(settings: Settings) -> QueuePolicy:
    return QueuePolicy(
        per_user_in_flight=settings.jobs.per_user_in_flight,
        lease_seconds=settings.jobs.lease_seconds,
        redeliver_after_seconds=settings.jobs.redeliver_after,
        retry=RetryPolicy(
            base_delay=settings.jobs.retry_base_delay, max_delay=settings.jobs.retry_max_delay
        ),
        # GENSTUDIO_JOB_TIMEOUT is every kind's default; GENSTUDIO_JOB_TIMEOUT_<KIND>
        # overrides one, over the core's own per-kind defaults (training: an hour)
        timeouts=TimeoutPolicy(
            default_seconds=settings.jobs.job_timeout,
            per_kind={**TimeoutPolicy().per_kind, **settings.jobs.job_timeouts},
        ),
    )
