"""What a job's success stores, by job kind: the output handlers.

The processor does not know what a kind makes. When a provider completes a job, the
handler registered for the job's kind checks the outputs and stores them (images; a
video and its poster; a training's weights), then records them in the unit of work
that marks the job succeeded. A new kind is a new handler in the registry, not a
branch in the processor.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.ids import new_id
from genstudio.core.model.job_params import TrainingParams, VideoParams
from genstudio.core.model.jobs import Job
from genstudio.core.model.media import (
    MediaAsset,
    MediaKind,
    mp4_info,
    png_dimensions,
    poster_key,
    sniff_content_type,
    storage_key,
)
from genstudio.core.model.moderation import Surface
from genstudio.core.model.pricing import ModelKind
from genstudio.core.model.training.models import (
    MAX_WEIGHTS_BYTES,
    TrainedModel,
    TrainedModelStatus,
    check_lora,
    weights_key,
)
from genstudio.core.services.generation.captions import caption_of
from genstudio.core.services.moderation.service import Moderation
from genstudio.ports.ai import Captioner
from genstudio.ports.clock import Clock
from genstudio.ports.gpu import GpuProvider, OutputRole, ProviderOutput
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWork

MAX_OUTPUT_BYTES = 50 * 1024 * 1024
#: how far a provider's video may be off the asked duration (a model's frame rounding)
DURATION_TOLERANCE = 0.5


@dataclass(frozen=True)
class Stored:
    """What a handler stored for one job."""

    #: become media rows; their ids become the job's ``asset_ids``
    assets: tuple[MediaAsset, ...] = ()
    #: other objects it stored, by its own names (a training's ``"weights"``): for its
    #: ``record`` to refer to
    objects: Mapping[str, str] = field(default_factory=dict)

    @property
    def asset_ids(self) -> tuple[uuid.UUID, ...]:
        return tuple(a.id for a in self.assets)


class OutputFiles:
    """One job's output files on their way from its provider to media storage.

    Every object written is remembered, so that ``discard`` deletes them all when the
    job's success is not recorded (the outputs were bad, the user cancelled
    meanwhile, the commit failed): a job that did not succeed keeps no files.
    """

    def __init__(self, gpu: GpuProvider, storage: MediaStorage) -> None:
        self.gpu = gpu
        self.storage = storage
        self.keys: list[str] = []

    async def fetch(self, output: ProviderOutput, expected: str) -> bytes:
        """The output's bytes, checked to be ``expected`` by their magic bytes and at
        most ``MAX_OUTPUT_BYTES``. Raises InvalidInput, or ProviderUnavailable from
        the provider's ``fetch``."""
        data = await self.gpu.fetch(output)
        if len(data) > MAX_OUTPUT_BYTES:
            raise InvalidInput(f"the provider's output is larger than {MAX_OUTPUT_BYTES} bytes")
        actual = sniff_content_type(data)
        if actual != expected:
            raise InvalidInput(
                f"the provider's {output.role.value} is {actual or 'of an unknown type'}, "
                f"not {expected}"
            )
        return data

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.keys.append(key)  # first: a put that fails half way may leave an object
        await self.storage.put(key, data, content_type)

    async def discard(self) -> None:
        keys, self.keys = self.keys, []
        for key in keys:
            await self.storage.delete(key)


class OutputHandler(Protocol):
    """What success stores for one job kind."""

    async def store(
        self, job: Job, outputs: Sequence[ProviderOutput], files: OutputFiles
    ) -> Stored:
        """Check the provider's outputs and store what they make, through ``files``.

        Raises InvalidInput when the outputs are not what the job asked for (a missing
        result, a wrong type, size or duration): the attempt fails as the provider's
        fault and is retried. ProviderUnavailable from fetching counts the same.
        Raises ContentRefused when moderation refuses an output (a strike recorded):
        the job fails for good, its credits released. What was stored before an error
        is discarded by the caller.
        """
        ...

    async def record(self, uow: UnitOfWork, job: Job, stored: Stored) -> None:
        """Write the rows for what was stored, in the unit of work that marks the job
        succeeded and settles its hold (the job's row and the account are locked
        already: rows referencing the profile come last)."""
        ...


class MediaOutputs:
    """The common part of handlers whose outputs become media rows. ``moderation``:
    each image (a video's poster frame and frames sampled over its length) is checked
    before anything of it is stored (issue #19); None checks nothing."""

    def __init__(
        self,
        clock: Clock,
        captioner: Captioner | None = None,
        moderation: Moderation | None = None,
    ) -> None:
        self.clock = clock
        self.captioner = captioner
        self.moderation = moderation

    async def moderated(self, job: Job, image: bytes) -> None:
        """Raises ContentRefused (``field`` output, a strike recorded against the job's
        user, the job named as the strike's reference) for an image moderation refuses."""
        if self.moderation is not None:
            await self.moderation.check_image(
                image,
                "image/png",
                Surface.OUTPUT,
                user_id=job.user_id,
                field="output",
                reference=f"job:{job.id}",
            )

    async def record(self, uow: UnitOfWork, job: Job, stored: Stored) -> None:
        for asset in stored.assets:
            await uow.media.add(asset)


def results_of(outputs: Sequence[ProviderOutput]) -> list[ProviderOutput]:
    """The outputs in role result. Raises InvalidInput when there are none."""
    results = [o for o in outputs if o.role is OutputRole.RESULT]
    if not results:
        raise InvalidInput("the provider completed the job without a result")
    return results


class ImageOutputs(MediaOutputs):
    """Image and edit jobs: each result is a PNG, stored as an image."""

    async def store(
        self, job: Job, outputs: Sequence[ProviderOutput], files: OutputFiles
    ) -> Stored:
        return Stored(assets=tuple([await self._image(job, o, files) for o in results_of(outputs)]))

    async def _image(self, job: Job, output: ProviderOutput, files: OutputFiles) -> MediaAsset:
        data = await files.fetch(output, "image/png")
        size = png_dimensions(data)
        if size is None:
            raise InvalidInput("the provider's output is not a PNG image")
        await self.moderated(job, data)
        media_id = new_id()
        key = storage_key(job.user_id, media_id, "png")
        await files.put(key, data, "image/png")
        return MediaAsset(
            caption=await caption_of(self.captioner, data, "image/png"),
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


class VideoOutputs(MediaOutputs):
    """Video jobs: each result is an MP4 of the asked duration, with its poster frame
    (the n-th poster is the n-th video's), stored as the video's thumbnail."""

    async def store(
        self, job: Job, outputs: Sequence[ProviderOutput], files: OutputFiles
    ) -> Stored:
        results = results_of(outputs)
        posters = [o for o in outputs if o.role is OutputRole.POSTER]
        assets = [
            await self._video(job, output, posters[n] if n < len(posters) else None, files)
            for n, output in enumerate(results)
        ]
        return Stored(assets=tuple(assets))

    async def _video(
        self, job: Job, output: ProviderOutput, poster: ProviderOutput | None, files: OutputFiles
    ) -> MediaAsset:
        data = await files.fetch(output, "video/mp4")
        info = mp4_info(data)
        if info is None or info.width <= 0 or info.height <= 0:
            raise InvalidInput("the provider's MP4 has no readable video track")
        params = job.params
        if (
            isinstance(params, VideoParams)
            and abs(info.duration_seconds - params.duration_seconds) > DURATION_TOLERANCE
        ):
            raise InvalidInput(
                f"the provider's video lasts {info.duration_seconds:.2f}s, "
                f"not the {params.duration_seconds}s asked for"
            )
        if poster is None:
            raise InvalidInput("the provider's video came without a poster frame")
        frame = await files.fetch(poster, "image/png")
        if png_dimensions(frame) is None:
            raise InvalidInput("the provider's poster frame is not a PNG image")
        # the poster, then frames sampled over the video's length (issue #19)
        await self.moderated(job, frame)
        if self.moderation is not None:
            await self.moderation.check_video(
                data, Surface.OUTPUT, user_id=job.user_id, field="output", reference=f"job:{job.id}"
            )
        media_id = new_id()
        key = storage_key(job.user_id, media_id, "mp4")
        thumbnail = poster_key(key)
        await files.put(thumbnail, frame, "image/png")
        await files.put(key, data, "video/mp4")
        return MediaAsset(
            id=media_id,
            user_id=job.user_id,
            kind=MediaKind.VIDEO,
            storage_key=key,
            content_type="video/mp4",
            width=info.width,
            height=info.height,
            byte_size=len(data),
            prompt=params.prompt,
            model_id=job.model_id,
            job_id=job.id,
            created_at=self.clock.now(),
            duration_seconds=info.duration_seconds,
            thumbnail_key=thumbnail,
            caption=await caption_of(self.captioner, frame, "image/png"),  # from its poster
        )


class TrainingOutputs(ImageOutputs):
    """Training jobs: one LoRA weights file (a valid ``.safetensors`` of down/up
    tensor pairs) stored under the owner's ``models/`` prefix, and the sample images
    (PNG) stored as the job's images; ``record`` adds the trained model, its thumbnail
    the first sample."""

    async def store(
        self, job: Job, outputs: Sequence[ProviderOutput], files: OutputFiles
    ) -> Stored:
        weights = [o for o in outputs if o.role is OutputRole.WEIGHTS]
        if len(weights) != 1:
            raise InvalidInput(f"the training came with {len(weights)} weights files, not 1")
        samples = [o for o in outputs if o.role is OutputRole.RESULT]
        if not samples:
            raise InvalidInput("the training came without a sample image")
        data = await files.gpu.fetch(weights[0])
        if len(data) > MAX_WEIGHTS_BYTES:
            raise InvalidInput(f"the weights file is larger than {MAX_WEIGHTS_BYTES} bytes")
        check_lora(data)
        model_id = new_id()
        key = weights_key(job.user_id, model_id)
        await files.put(key, data, "application/octet-stream")
        assets = tuple([await self._image(job, o, files) for o in samples])
        return Stored(
            assets=assets,
            objects={"weights": key, "model_id": str(model_id), "weights_bytes": str(len(data))},
        )

    async def record(self, uow: UnitOfWork, job: Job, stored: Stored) -> None:
        await super().record(uow, job, stored)  # the samples' media rows
        params = job.params
        if not isinstance(params, TrainingParams):
            raise InvalidInput(f"job {job.id} is not a training job")
        now = self.clock.now()
        await uow.trained_models.add(
            TrainedModel(
                id=uuid.UUID(stored.objects["model_id"]),
                user_id=job.user_id,
                name=params.name,
                trigger_word=params.trigger_word,
                base_model=params.base_model,
                weights_key=stored.objects["weights"],
                weights_bytes=int(stored.objects["weights_bytes"]),
                status=TrainedModelStatus.READY,
                thumbnail_key=stored.assets[0].storage_key,
                photo_set_id=params.photo_set_id,
                job_id=job.id,
                created_at=now,
                updated_at=now,
            )
        )


#: the handler of each job kind: what its success stores
OutputHandlers = Mapping[ModelKind, OutputHandler]


def media_outputs(
    clock: Clock, captioner: Captioner | None = None, moderation: Moderation | None = None
) -> dict[ModelKind, OutputHandler]:
    """The handlers of the kinds that make media: image, edit (images) and video."""
    images = ImageOutputs(clock, captioner, moderation)
    return {
        ModelKind.IMAGE: images,
        ModelKind.EDIT: images,
        ModelKind.VIDEO: VideoOutputs(clock, captioner, moderation),
    }


def job_outputs(
    clock: Clock, captioner: Captioner | None = None, moderation: Moderation | None = None
) -> dict[ModelKind, OutputHandler]:
    """The handler of every job kind: ``media_outputs`` and training (whose sample
    images are not captioned: they show the user's likeness, not a result to search;
    they are moderated as any output is)."""
    training = TrainingOutputs(clock, moderation=moderation)
    return {**media_outputs(clock, captioner, moderation), ModelKind.TRAINING: training}
