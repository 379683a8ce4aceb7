"""Which GPU providers a deployment has, and how jobs are routed among them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from genstudio.core.model.queueing import QueuePolicy, RetryPolicy, TimeoutPolicy
from genstudio.core.model.routing import ProviderRouter
from genstudio.entrypoints.factories import modal_configured, runpod_configured
from genstudio.entrypoints.plugins import load_gpu_provider
from genstudio.entrypoints.settings import Settings
from genstudio.ports.gpu import GpuProvider


def gpu_names(settings: Settings) -> tuple[str, ...]:
    """The providers in order of preference: GPU_PROVIDERS when set; else, as always,
    Modal (primary) and Runpod (fallback) where configured, and with neither the
    embedded default's CPU preview renderer."""
    if settings.adapters.gpu_providers:
        return settings.adapters.gpu_providers
    chosen = [
        name
        for name, configured in (("modal", modal_configured), ("runpod", runpod_configured))
        if configured(settings)
    ]
    return tuple(chosen) or ("local",)


def build_gpus(settings: Settings, local: Callable[[], GpuProvider]) -> dict[str, GpuProvider]:
    """Each provider of ``gpu_names`` built by the factory its name is registered under
    (entrypoints/plugins.py), handed its ``<NAME>_*`` variables. ``local`` is the
    container's CPU renderer (which a test may swap), built (and its PyAV and numpy
    imported) only when it is chosen."""
    gpus: dict[str, GpuProvider] = {}
    for name in gpu_names(settings):
        if name == "local":
            renderer = local()
            gpus[renderer.name] = renderer
            continue
        provider = load_gpu_provider(name)(settings, settings.adapters.env_of(name))
        if getattr(provider, "name", None) != name:
            raise SystemExit(
                f"GPU_PROVIDERS: the provider registered as {name!r} calls itself "
                f"{getattr(provider, 'name', None)!r}; its jobs would not find it again"
            )
        gpus[name] = provider
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
