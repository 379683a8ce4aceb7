"""The training jobs' use cases over their ports, bound once per process (as
``Generation`` is for the generation area): the HTTP edge depends on this one object.
Each method is the use case of the same name in ``submit`` or ``models``."""

from __future__ import annotations

import uuid

from genstudio.core.model.events import JobEvent
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.pricing import Catalog
from genstudio.core.services.analytics import Tracker
from genstudio.core.services.generation.submitted import Submitted
from genstudio.core.services.training import models, submit
from genstudio.ports.clock import Clock
from genstudio.ports.queue import JobQueue
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWorkFactory

#: the catalog's training model a request names none
DEFAULT_TRAINER = "flux-lora"


class Training:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        queue: JobQueue,
        clock: Clock,
        catalog: Catalog,
        storage: MediaStorage,
        *,
        url_ttl: int,
        analytics: Tracker | None = None,
        realtime: RealtimePublisher | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.queue = queue
        self.clock = clock
        self.catalog = catalog
        self.storage = storage
        self.url_ttl = url_ttl
        self.analytics = analytics  # training_started after commit (issue #20)
        self.realtime = realtime  # a submission's job.updated and credits.changed (issue #18)

    async def submit(
        self,
        *,
        user_id: uuid.UUID,
        email: str | None,
        model_id: str | None,
        photo_set_id: uuid.UUID,
        steps: int,
        trigger_word: str,
        base_model: str | None,
        name: str,
        seed: int | None,
        idempotency_key: str | None,
        request_hash: str,
    ) -> Submitted:
        return await submit.submit_training(
            self.uow_factory,
            self.queue,
            self.clock,
            self.catalog,
            user_id=user_id,
            email=email,
            model_id=model_id or DEFAULT_TRAINER,
            photo_set_id=photo_set_id,
            steps=steps,
            trigger_word=trigger_word,
            base_model=base_model,
            name=name,
            seed=seed,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            analytics=self.analytics,
            realtime=self.realtime,
        )

    async def view(self, *, user_id: uuid.UUID, job_id: uuid.UUID) -> models.TrainingView:
        return await models.training_view(
            self.uow_factory,
            self.storage,
            self.clock,
            user_id=user_id,
            job_id=job_id,
            url_ttl=self.url_ttl,
        )

    async def events(self, *, user_id: uuid.UUID, job_id: uuid.UUID) -> list[JobEvent]:
        return await models.training_events(self.uow_factory, user_id=user_id, job_id=job_id)

    async def list_models(self, *, user_id: uuid.UUID) -> list[models.ModelView]:
        return await models.list_models(
            self.uow_factory, self.storage, user_id=user_id, url_ttl=self.url_ttl
        )

    async def rename(
        self, *, user_id: uuid.UUID, model_id: uuid.UUID, name: str
    ) -> models.ModelView:
        return await models.rename_model(
            self.uow_factory,
            self.storage,
            self.clock,
            user_id=user_id,
            model_id=model_id,
            name=name,
            url_ttl=self.url_ttl,
        )

    async def delete(self, *, user_id: uuid.UUID, model_id: uuid.UUID) -> None:
        await models.delete_model(
            self.uow_factory, self.storage, self.clock, user_id=user_id, model_id=model_id
        )

    async def with_lora(
        self, *, user_id: uuid.UUID, model_id: str, params: ImageParams
    ) -> ImageParams:
        return await models.with_lora(
            self.uow_factory, user_id=user_id, model_id=model_id, params=params
        )
