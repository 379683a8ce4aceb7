"""Which GPU providers a deployment has, and how jobs are routed among them."""

from __future__ import annotations

from datetime import timedelta

from core.queueing import QueuePolicy, RetryPolicy
from core.routing import ProviderRouter
from entrypoints.settings import Settings
from ports.gpu import GpuProvider


def build_gpus(settings: Settings, local: GpuProvider) -> dict[str, GpuProvider]:
    """The embedded default renders on the CPU; remote providers join when configured."""
    return {local.name: local}


def build_router(settings: Settings, gpus: dict[str, GpuProvider]) -> ProviderRouter:
    """Every model goes to the providers in order of preference: the first is primary."""
    return ProviderRouter(
        {},
        default=list(gpus),
        failure_threshold=settings.breaker_failures,
        cooldown=timedelta(seconds=settings.breaker_cooldown),
    )


def build_policy(settings: Settings) -> QueuePolicy:
    return QueuePolicy(
        per_user_in_flight=settings.per_user_in_flight,
        lease_seconds=settings.lease_seconds,
        retry=RetryPolicy(base_delay=settings.retry_base_delay, max_delay=settings.retry_max_delay),
    )
