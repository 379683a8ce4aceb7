"""Starting a training: check the set, price the steps, then the job machinery's one
submission path (``submit_job``: hold, record, answer once per Idempotency-Key).

Everything here is free and checked before anything is held: the catalog's training
model, the steps it offers, the trigger word, the base model, the name, and that the
set is the user's with enough accepted photos. The job trains on the storage keys of
the set's accepted photos as they are now (``TrainingParams.photo_keys``); the set
cannot lose photos while the job is queued or running (``in_use_by_training``).
"""

from __future__ import annotations

import uuid

from genstudio.core.model.errors import NotFound
from genstudio.core.model.job_params import TrainingParams
from genstudio.core.model.pricing import Catalog, ModelKind
from genstudio.core.model.training.photos import MIN_ACCEPTED_PHOTOS
from genstudio.core.services.analytics import Tracker
from genstudio.core.services.generation.submit import submit_job
from genstudio.core.services.generation.submitted import Submitted
from genstudio.ports.clock import Clock
from genstudio.ports.queue import JobQueue
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWorkFactory


async def accepted_photo_keys(
    uow_factory: UnitOfWorkFactory, user_id: uuid.UUID, set_id: uuid.UUID
) -> tuple[str, ...]:
    """The storage keys of the set's accepted photos, in upload order. Raises NotFound
    (``photo_set_id``) when the set is not the user's."""
    async with uow_factory() as uow:
        photo_set = await uow.photo_sets.get_set(set_id)
        if photo_set is None or photo_set.user_id != user_id:
            raise NotFound("no such photo set", field="photo_set_id")
        photos = await uow.photo_sets.list_photos(set_id)
    return tuple(p.storage_key for p in photos if p.verdict.accepted and p.storage_key)


async def submit_training(
    uow_factory: UnitOfWorkFactory,
    queue: JobQueue,
    clock: Clock,
    catalog: Catalog,
    *,
    user_id: uuid.UUID,
    email: str | None,
    model_id: str,
    photo_set_id: uuid.UUID,
    steps: int,
    trigger_word: str,
    base_model: str | None,
    name: str,
    seed: int | None,
    idempotency_key: str | None,
    request_hash: str,
    min_photos: int = MIN_ACCEPTED_PHOTOS,
    analytics: Tracker | None = None,
    realtime: RealtimePublisher | None = None,
) -> Submitted:
    """Validate, price (per hundred steps) and queue a training job of ``model_id``.

    ``base_model`` None: the training model's first base. Raises InvalidInput naming
    the field (``photo_set_id`` with the count of accepted photos when there are fewer
    than ``min_photos``), NotFound (``photo_set_id``: not the user's set), and what
    ``submit_job`` raises (402, idempotency conflicts). A replay of an answered key is
    answered by ``submit_job``, from its stored job.
    """
    spec = catalog.get(model_id, ModelKind.TRAINING)
    rule = catalog.step_rule(model_id)
    keys = await accepted_photo_keys(uow_factory, user_id, photo_set_id)
    params = TrainingParams(
        photo_set_id=photo_set_id,
        photo_keys=keys,
        steps=steps,
        trigger_word=trigger_word,
        base_model=base_model or (spec.bases[0] if spec.bases else ""),
        name=name.strip(),
        seed=seed,
    )
    params.validate(allowed_steps=rule.steps, base_models=spec.bases, min_photos=min_photos)
    return await submit_job(
        uow_factory,
        queue,
        clock,
        kind=ModelKind.TRAINING,
        model_id=model_id,
        params=params,
        cost=catalog.training_price(model_id, steps),
        user_id=user_id,
        email=email,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        analytics=analytics,  # training_started, after commit (issue #20)
        realtime=realtime,  # job.updated (queued) and credits.changed (held) (issue #18)
    )
