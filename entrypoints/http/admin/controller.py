"""Operations (service role only): queue health, dead letters, re-runs."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, QueryParameter

from core.model.errors import Forbidden
from core.model.queueing import STATS_WINDOWS
from core.services.generation.jobs import rerun_dead_letter
from core.services.reconcile import provider_health
from entrypoints.http.deps import PrincipalDep, RuntimeDep
from entrypoints.http.generation.schemas import JobResponse
from entrypoints.runtime import Runtime
from ports.auth import Principal


class DepthItem(msgspec.Struct, rename="camel", kw_only=True):
    kind: str
    priority: int
    queued: int
    due: int
    oldest_waiting_seconds: float


class KindItem(msgspec.Struct, rename="camel", kw_only=True):
    kind: str
    in_flight: int
    dead_letters: int
    succeeded: dict[str, int]
    failed: dict[str, int]
    success_rate: dict[str, float | None]


class ProviderItem(msgspec.Struct, rename="camel", kw_only=True):
    name: str
    healthy: bool
    breaker: str
    detail: str = ""


class StreamItem(msgspec.Struct, rename="camel", kw_only=True):
    name: str
    length: int
    pending: int


class QueuesResponse(msgspec.Struct, rename="camel", kw_only=True):
    depths: list[DepthItem]
    kinds: list[KindItem]
    providers: list[ProviderItem]
    streams: list[StreamItem]
    #: why ``streams`` is empty when Redis did not answer (the rest comes from Postgres)
    streams_error: str | None = None


class JobList(msgspec.Struct):
    items: list[JobResponse]


def require_service(principal: Principal) -> None:
    if not principal.is_service:
        raise Forbidden("this needs a service-role token")


async def _streams(runtime: Runtime) -> list[StreamItem]:
    if not runtime.settings.redis_url:
        return []
    from redis.asyncio import Redis

    from adapters.redis import KINDS, MAINTENANCE_STREAM, stream_for

    client = Redis.from_url(runtime.settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    out: list[StreamItem] = []
    try:
        for name in [*(stream_for(k) for k in KINDS), MAINTENANCE_STREAM]:
            length = await client.xlen(name)
            pending = 0
            if length:
                groups = await client.xinfo_groups(name)
                pending = sum(int(g.get("pending", 0)) for g in groups)
            out.append(StreamItem(name=name, length=length, pending=pending))
    finally:
        await client.aclose()
    return out


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["operations"]

    @get("/queues", summary="Queue depths, in flight, dead letters, rates, provider health")
    async def queues(self, principal: PrincipalDep, runtime: RuntimeDep) -> QueuesResponse:
        require_service(principal)
        c = runtime.container
        now = c.clock().now()
        async with c.uow_factory()() as uow:
            stats = await uow.jobs.stats(now=now, windows=STATS_WINDOWS)
        router = c.router()
        # all at once, each bounded: a provider that stalls is unhealthy, not a slow page
        providers = []
        for name, health in (await provider_health(c.gpus())).items():
            providers.append(
                ProviderItem(
                    name=name,
                    healthy=health.healthy,
                    breaker=router.view(name).breaker.state(now).value,
                    detail=health.detail,
                )
            )
        streams: list[StreamItem] = []
        streams_error: str | None = None
        try:
            streams = await _streams(runtime)
        except Exception as exc:  # Redis down: the rest of the page still answers
            streams_error = f"{type(exc).__name__}: {exc}"
        kinds = [
            KindItem(
                kind=k.kind,
                in_flight=k.in_flight,
                dead_letters=k.dead_letters,
                succeeded=k.succeeded,
                failed=k.failed,
                success_rate={
                    w: (k.succeeded[w] / total if (total := k.succeeded[w] + k.failed[w]) else None)
                    for w in k.succeeded
                },
            )
            for k in stats.kinds
        ]
        return QueuesResponse(
            depths=[
                DepthItem(
                    kind=d.kind,
                    priority=d.priority,
                    queued=d.queued,
                    due=d.due,
                    oldest_waiting_seconds=round(d.oldest_waiting_seconds, 3),
                )
                for d in stats.depths
            ],
            kinds=kinds,
            providers=providers,
            streams=streams,
            streams_error=streams_error,
        )

    @get("/dead-letters", summary="Jobs that used up their attempts, newest first")
    async def dead_letters(
        self,
        principal: PrincipalDep,
        runtime: RuntimeDep,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> JobList:
        require_service(principal)
        async with runtime.container.uow_factory()() as uow:
            jobs = await uow.jobs.dead_letters(limit=limit)
        return JobList(items=[JobResponse.of(j) for j in jobs])

    @post(
        "/jobs/{job_id:uuid}/rerun",
        summary="Re-run a dead-lettered job (holds its price again)",
        status_code=202,
    )
    async def rerun(
        self, job_id: FromPath[uuid.UUID], principal: PrincipalDep, runtime: RuntimeDep
    ) -> JobResponse:
        require_service(principal)
        c = runtime.container
        job = await rerun_dead_letter(c.uow_factory(), c.queue(), c.clock(), job_id=job_id)
        return JobResponse.of(job)
