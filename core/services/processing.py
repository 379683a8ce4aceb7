"""Running a job at a GPU provider (the worker side).

Every step is idempotent and keyed by the job id: a redelivered message, a second
worker or a restart after a crash finds the job's state in the database and goes
on from there. The job row is locked while it changes, so a user's cancellation
and the worker's result never both win.
"""

from __future__ import annotations

import logging
import uuid

from core.errors import InvalidInput
from core.jobs import FailureReason, Job, JobError, JobStatus
from core.media import MediaAsset, MediaKind, png_dimensions, storage_key
from core.pricing import Catalog
from core.services.credits import release_hold, settle_hold
from ports.clock import Clock
from ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuProvider,
    GpuRequest,
    Pending,
    ProviderOutput,
    ProviderUnavailable,
)
from ports.repositories import UnitOfWorkFactory
from ports.storage import MediaStorage

log = logging.getLogger("genstudio.jobs")

MAX_OUTPUT_BYTES = 50 * 1024 * 1024


class JobProcessor:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        gpu: GpuProvider,
        storage: MediaStorage,
        clock: Clock,
        catalog: Catalog,
        *,
        poll_interval: float = 0.5,
        timeout: float = 900.0,
    ) -> None:
        self.uow_factory = uow_factory
        self.gpu = gpu
        self.storage = storage
        self.clock = clock
        self.catalog = catalog
        self.poll_interval = poll_interval
        self.timeout = timeout

    async def process(self, job_id: uuid.UUID) -> Job | None:
        """Take the job as far as it goes: dispatch, poll, store results, settle."""
        job = await self._dispatch(job_id)
        if job is None or job.status.terminal:
            return job
        provider_job_id = job.provider_job_id
        assert provider_job_id is not None
        waited = 0.0
        while True:
            try:
                status = await self.gpu.poll(provider_job_id)
            except ProviderUnavailable as exc:
                status = Failed(JobError(FailureReason.INFRASTRUCTURE, str(exc)))
            if isinstance(status, Pending):
                job = await self._progress(job.id, status)
                if job is None or job.status.terminal:
                    await self.gpu.cancel(provider_job_id)
                    return job
            elif isinstance(status, Completed):
                return await self._succeed(job.id, status)
            elif isinstance(status, Failed):
                return await self.fail(job.id, status.error)
            elif isinstance(status, Cancelled):
                return await self.fail(
                    job.id, JobError(FailureReason.INFRASTRUCTURE, "the provider cancelled the job")
                )
            if waited >= self.timeout:
                await self.gpu.cancel(provider_job_id)
                return await self.fail(
                    job.id, JobError(FailureReason.TIMEOUT, f"no result after {self.timeout:.0f}s")
                )
            await self.clock.sleep(self.poll_interval)
            waited += self.poll_interval

    async def _dispatch(self, job_id: uuid.UUID) -> Job | None:
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if job is None or job.status.terminal:
                return job
            if job.status is JobStatus.QUEUED:
                job = await uow.jobs.update(job.dispatch(self.gpu.name, self.clock.now()))
                await uow.commit()
                log.info("job dispatched", extra={"job_id": str(job.id), "provider": self.gpu.name})
            elif job.provider_job_id is not None:
                return job  # already at the provider: resume polling, never submit twice
        try:
            provider_job_id = await self.gpu.submit(
                GpuRequest(
                    job_id=job.id,
                    provider_model=self.catalog.get(job.model_id, job.kind).provider_model,
                    params=job.params,
                )
            )
        except ProviderUnavailable as exc:
            return await self.fail(job.id, JobError(FailureReason.INFRASTRUCTURE, str(exc)))
        async with self.uow_factory() as uow:
            current = await uow.jobs.get(job_id, lock=True)
            if current is None or current.status.terminal:
                await self.gpu.cancel(provider_job_id)
                return current
            job = await uow.jobs.update(
                current.accepted_by_provider(provider_job_id, self.clock.now())
            )
            await uow.commit()
        return job

    async def _progress(self, job_id: uuid.UUID, status: Pending) -> Job | None:
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if job is None or job.status.terminal:
                return job
            if not status.started and job.status is JobStatus.DISPATCHED:
                return job
            moved = job.report_progress(status.progress, self.clock.now())
            if moved.status is job.status and moved.progress == job.progress:
                return job
            job = await uow.jobs.update(moved)
            await uow.commit()
            return job

    async def _succeed(self, job_id: uuid.UUID, status: Completed) -> Job | None:
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id)
        if job is None or job.status.terminal:
            return job
        stored: list[MediaAsset] = []
        try:
            for output in status.outputs:
                stored.append(await self._store(job, output))
        except (InvalidInput, ProviderUnavailable) as exc:
            await self._discard(stored)
            return await self.fail(job_id, JobError(FailureReason.INFRASTRUCTURE, str(exc)))
        try:
            async with self.uow_factory() as uow:
                job = await uow.jobs.get(job_id, lock=True)
                if job is None or job.status.terminal:
                    await self._discard(stored)
                    return job
                for asset in stored:
                    await uow.media.add(asset)
                now = self.clock.now()
                job = await uow.jobs.update(job.succeed(tuple(a.id for a in stored), now))
                if job.hold_id is not None:
                    await settle_hold(uow, job.hold_id, now)
                await uow.commit()
        except BaseException:
            await self._discard(stored)
            raise
        log.info("job succeeded", extra={"job_id": str(job.id), "assets": len(stored)})
        return job

    async def _store(self, job: Job, output: ProviderOutput) -> MediaAsset:
        data = await self.gpu.fetch(output)
        if len(data) > MAX_OUTPUT_BYTES:
            raise InvalidInput(f"the provider's output is larger than {MAX_OUTPUT_BYTES} bytes")
        size = png_dimensions(data)
        if size is None:
            raise InvalidInput("the provider's output is not a PNG image")
        media_id = uuid.uuid4()
        key = storage_key(job.user_id, media_id, "png")
        await self.storage.put(key, data, "image/png")
        return MediaAsset(
            id=media_id,
            user_id=job.user_id,
            kind=MediaKind.IMAGE,
            storage_key=key,
            content_type="image/png",
            width=size[0],
            height=size[1],
            byte_size=len(data),
            prompt=job.params.prompt,
            model_id=job.model_id,
            job_id=job.id,
            created_at=self.clock.now(),
        )

    async def _discard(self, assets: list[MediaAsset]) -> None:
        for asset in assets:
            await self.storage.delete(asset.storage_key)

    async def fail(self, job_id: uuid.UUID, error: JobError) -> Job | None:
        """Fail the job and release its hold, once."""
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if job is None or job.status.terminal:
                return job
            now = self.clock.now()
            job = await uow.jobs.update(job.fail(error, now))
            if job.hold_id is not None:
                await release_hold(uow, job.hold_id, now)
            await uow.commit()
        log.warning(
            "job failed",
            extra={"job_id": str(job.id), "reason": error.reason.value, "error": error.message},
        )
        return job
