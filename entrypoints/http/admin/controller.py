"""Operations (service role only): queue health, dead letters, re-runs."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, QueryParameter

from genstudio.core.model.errors import Forbidden
from genstudio.core.services import queries
from genstudio.core.services.generation.jobs import rerun_dead_letter
from genstudio.core.services.queries import QueueBoard
from genstudio.entrypoints.http.deps import (
    ClockDep,
    GpusDep,
    PrincipalDep,
    QueueDep,
    QueueInspectorDep,
    RealtimeHubDep,
    RouterDep,
    UowFactoryDep,
)
from genstudio.entrypoints.http.generation.schemas import JobResponse
from genstudio.ports.auth import Principal


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

    @classmethod
    def of(cls, board: QueueBoard) -> QueuesResponse:
        return cls(
            depths=[
                DepthItem(
                    kind=d.kind,
                    priority=d.priority,
                    queued=d.queued,
                    due=d.due,
                    oldest_waiting_seconds=round(d.oldest_waiting_seconds, 3),
                )
                for d in board.stats.depths
            ],
            kinds=[
                KindItem(
                    kind=k.kind,
                    in_flight=k.in_flight,
                    dead_letters=k.dead_letters,
                    succeeded=k.succeeded,
                    failed=k.failed,
                    success_rate={
                        w: (
                            k.succeeded[w] / total
                            if (total := k.succeeded[w] + k.failed[w])
                            else None
                        )
                        for w in k.succeeded
                    },
                )
                for k in board.stats.kinds
            ],
            providers=[
                ProviderItem(
                    name=p.name, healthy=p.healthy, breaker=p.breaker.value, detail=p.detail
                )
                for p in board.providers
            ],
            streams=[
                StreamItem(name=s.name, length=s.length, pending=s.pending) for s in board.streams
            ],
            streams_error=board.streams_error,
        )


class JobList(msgspec.Struct):
    items: list[JobResponse]


def require_service(principal: Principal) -> None:
    if not principal.is_service:
        raise Forbidden("this needs a service-role token")


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["operations"]

    @get("/queues", summary="Queue depths, in flight, dead letters, rates, provider health")
    async def queues(
        self,
        principal: PrincipalDep,
        uow_factory: UowFactoryDep,
        clock: ClockDep,
        gpus: GpusDep,
        router: RouterDep,
        queue_inspector: QueueInspectorDep,
    ) -> QueuesResponse:
        require_service(principal)
        board = await queries.queue_board(uow_factory, clock, gpus, router, queue_inspector)
        return QueuesResponse.of(board)

    @get("/dead-letters", summary="Jobs that used up their attempts, newest first")
    async def dead_letters(
        self,
        principal: PrincipalDep,
        uow_factory: UowFactoryDep,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> JobList:
        require_service(principal)
        jobs = await queries.dead_letters(uow_factory, limit=limit)
        return JobList(items=[JobResponse.of(j) for j in jobs])

    @post(
        "/jobs/{job_id:uuid}/rerun",
        summary="Re-run a dead-lettered job (holds its price again)",
        status_code=202,
    )
    async def rerun(
        self,
        job_id: FromPath[uuid.UUID],
        principal: PrincipalDep,
        uow_factory: UowFactoryDep,
        queue: QueueDep,
        clock: ClockDep,
        realtime_hub: RealtimeHubDep,
    ) -> JobResponse:
        require_service(principal)
        # the owner's open app hears of the new job and the credits it holds (issue #18)
        job = await rerun_dead_letter(
            uow_factory, queue, clock, job_id=job_id, realtime=realtime_hub
        )
        return JobResponse.of(job)
