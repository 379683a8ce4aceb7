"""The generation area's use cases over their ports, bound once per process.

The HTTP edge depends on this one object rather than on each port: Litestar resolves
a handler's sibling dependencies in a task group on every request, and the image
submission is the benchmarked hot path. Each method is the use case of the same
name in ``submit``, ``jobs`` or ``queries``, with the ports filled in.
"""

from __future__ import annotations

import uuid

from genstudio.core.model.events import JobEvent
from genstudio.core.model.job_params import ImageParams, VideoInput
from genstudio.core.model.jobs import Job
from genstudio.core.model.pricing import Catalog, ModelKind
from genstudio.core.services import queries
from genstudio.core.services.analytics import Tracker
from genstudio.core.services.generation import jobs, submit
from genstudio.core.services.generation.admission import admit_upload
from genstudio.core.services.generation.submitted import Submitted
from genstudio.core.services.generation.uploads import Upload
from genstudio.core.services.moderation.service import Moderation
from genstudio.ports.ai import Captioner, PromptEnhancer
from genstudio.ports.clock import Clock
from genstudio.ports.imaging import ImageInspector
from genstudio.ports.queue import JobQueue
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWorkFactory


class Generation:
    """Submitting, cancelling and reading generation jobs (one per process, from the
    container). ``captioner``: None where captions are not configured."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        queue: JobQueue,
        clock: Clock,
        catalog: Catalog,
        storage: MediaStorage,
        inspector: ImageInspector,
        *,
        enhancer: PromptEnhancer,
        captioner: Captioner | None,
        url_ttl: int,
        realtime: RealtimePublisher | None = None,
        moderation: Moderation | None = None,
        analytics: Tracker | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.queue = queue
        self.clock = clock
        self.catalog = catalog
        self.storage = storage
        self.inspector = inspector
        self.enhancer = enhancer
        self.captioner = captioner
        self.url_ttl = url_ttl
        self.realtime = realtime  # job.updated and credits.changed after each commit
        self.moderation = moderation  # prompts checked on submission (issue #19)
        self.analytics = analytics  # submissions tracked after commit (issue #20)

    async def submit_image(
        self,
        *,
        user_id: uuid.UUID,
        email: str | None,
        model_id: str,
        params: ImageParams,
        idempotency_key: str | None,
        request_hash: str,
        enhance: bool = False,
    ) -> Submitted:
        """``submit.submit_image``; ``enhance``: the user asked for the prompt to be
        enhanced (a paid call, made only after the free checks)."""
        return await submit.submit_image(
            self.uow_factory,
            self.queue,
            self.clock,
            self.catalog,
            user_id=user_id,
            email=email,
            model_id=model_id,
            params=params,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            enhancer=self.enhancer if enhance else None,
            realtime=self.realtime,
            analytics=self.analytics,
            moderation=self.moderation,
        )

    async def submit_edit(
        self,
        *,
        user_id: uuid.UUID,
        email: str | None,
        model_id: str,
        prompt: str,
        negative_prompt: str = "",
        seed: int | None = None,
        strength: float = 0.85,
        image: Upload,
        mask: Upload,
        idempotency_key: str | None,
        request_hash: str,
    ) -> Submitted:
        """``submit.submit_edit``, captioning the uploads where captions are configured."""
        return await submit.submit_edit(
            self.uow_factory,
            self.queue,
            self.clock,
            self.catalog,
            self.storage,
            self.inspector,
            user_id=user_id,
            email=email,
            model_id=model_id,
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            strength=strength,
            image=image,
            mask=mask,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            captioner=self.captioner,
            realtime=self.realtime,
            analytics=self.analytics,
            moderation=self.moderation,
        )

    async def submit_video(
        self,
        *,
        user_id: uuid.UUID,
        email: str | None,
        model_id: str,
        input_type: VideoInput,
        prompt: str,
        negative_prompt: str = "",
        duration_seconds: int = 5,
        resolution: str = "480p",
        fps: int = 16,
        seed: int | None = None,
        image: Upload | None = None,
        first_frame: Upload | None = None,
        last_frame: Upload | None = None,
        idempotency_key: str | None,
        request_hash: str,
    ) -> Submitted:
        """``submit.submit_video``, captioning the uploads as ``submit_edit`` does."""
        return await submit.submit_video(
            self.uow_factory,
            self.queue,
            self.clock,
            self.catalog,
            self.storage,
            self.inspector,
            user_id=user_id,
            email=email,
            model_id=model_id,
            input_type=input_type,
            prompt=prompt,
            negative_prompt=negative_prompt,
            duration_seconds=duration_seconds,
            resolution=resolution,
            fps=fps,
            seed=seed,
            image=image,
            first_frame=first_frame,
            last_frame=last_frame,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            captioner=self.captioner,
            realtime=self.realtime,
            analytics=self.analytics,
            moderation=self.moderation,
        )

    async def admit_upload(
        self, *, user_id: uuid.UUID, kind: ModelKind, idempotency_key: str | None
    ) -> None:
        """``admission.admit_upload``: before an edit's or a video's body is read."""
        await admit_upload(
            self.uow_factory,
            self.catalog,
            self.moderation,
            user_id=user_id,
            kind=kind,
            idempotency_key=idempotency_key,
        )

    async def cancel(self, *, user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
        """``jobs.cancel_job``: raises NotFound for another user's job, JobFinished for
        one that ended."""
        return await jobs.cancel_job(
            self.uow_factory, self.clock, user_id=user_id, job_id=job_id, realtime=self.realtime
        )

    async def view(self, *, user_id: uuid.UUID, job_id: uuid.UUID) -> queries.JobView:
        """``queries.job_view``, its results signed for the configured time."""
        return await queries.job_view(
            self.uow_factory,
            self.storage,
            self.clock,
            user_id=user_id,
            job_id=job_id,
            url_ttl=self.url_ttl,
        )

    async def events(self, *, user_id: uuid.UUID, job_id: uuid.UUID) -> list[JobEvent]:
        """``queries.job_events``."""
        return await queries.job_events(self.uow_factory, user_id=user_id, job_id=job_id)
