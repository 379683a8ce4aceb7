"""Submitting edits and videos with uploads, and storing their results (memory adapters)."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import msgspec
import pytest
from PIL import Image, ImageDraw

from genstudio.adapters.imaging import PillowImageInspector
from genstudio.adapters.memory import FixedCaptioner, InMemoryGpuProvider
from genstudio.adapters.memory.gpu import tiny_mp4, tiny_png
from genstudio.core.model.errors import IdempotencyMismatch, InsufficientCredits, InvalidInput
from genstudio.core.model.job_params import EditParams, VideoInput, VideoParams
from genstudio.core.model.jobs import JobStatus
from genstudio.core.model.media import MediaKind
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.services.generation.submit import submit_edit, submit_video
from genstudio.core.services.generation.submitted import Submitted
from genstudio.core.services.generation.uploads import ORPHAN_AFTER, Upload, sweep_orphaned_uploads
from genstudio.core.services.reconcile import Reconciler
from genstudio.ports.gpu import Completed, OutputRole, ProviderOutput, ProviderStatus
from genstudio.ports.storage import StorageUnavailable
from tests.unit.support import Studio


def png(width: int = 128, height: int = 96, colour: tuple[int, int, int] = (40, 90, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def mask(width: int = 128, height: int = 96, painted: bool = True) -> bytes:
    image = Image.new("L", (width, height), 0)
    if painted:
        ImageDraw.Draw(image).rectangle((10, 10, 40, 40), fill=255)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class Uploading(Studio):
    inspector = PillowImageInspector()

    async def edit(
        self,
        user: uuid.UUID,
        *,
        image: bytes | None = None,
        mask_png: bytes | None = None,
        key: str | None = None,
        request_hash: str = "edit-1",
        prompt: str = "a red hat",
        captioner: FixedCaptioner | None = None,
    ) -> Submitted:
        return await submit_edit(
            self.factory,
            self.queue,
            self.clock,
            DEFAULT_CATALOG,
            self.storage,
            self.inspector,
            user_id=user,
            email=None,
            model_id="sdxl-inpaint",
            prompt=prompt,
            image=Upload(image or png(), "image/png"),
            mask=Upload(mask_png or mask(), "image/png"),
            idempotency_key=key,
            request_hash=request_hash,
            captioner=captioner,
        )

    async def video(self, user: uuid.UUID, **kwargs: object) -> Submitted:
        options: dict[str, object] = {
            "input_type": VideoInput.TEXT,
            "prompt": "waves",
            "duration_seconds": 2,
            "fps": 8,
            "idempotency_key": None,
            "request_hash": "video-1",
        } | kwargs
        return await submit_video(
            self.factory,
            self.queue,
            self.clock,
            DEFAULT_CATALOG,
            self.storage,
            self.inspector,
            user_id=user,
            email=None,
            model_id="wan-2.1",
            **options,  # type: ignore[arg-type]
        )

    async def uploads_of(self, user: uuid.UUID) -> list[str]:
        async with self.factory() as uow:
            d = uow.view()
            return sorted(m.storage_key for m in d.media.values() if m.user_id == user)


@pytest.fixture
def studio() -> Uploading:
    return Uploading()


async def test_an_edit_stores_both_uploads_privately_and_queues_one_priced_job(
    studio: Uploading,
) -> None:
    user = await studio.user_with(5)

    result = await studio.edit(user)

    assert result.job is not None and not result.replayed
    job = await studio.job(result.job.id)
    assert isinstance(job.params, EditParams)
    assert job.cost == DEFAULT_CATALOG.edit_price("sdxl-inpaint", 128, 96) == 1
    assert (job.params.width, job.params.height) == (128, 96)
    keys = [job.params.image_key, job.params.mask_key]
    assert all(k.startswith(f"{user}/uploads/") and k.endswith(".png") for k in keys)
    assert sorted(keys) == sorted(studio.storage.objects) == await studio.uploads_of(user)
    assert (await studio.account(user)).balance == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"mask_png": mask(painted=False)}, InvalidInput, "mask"),
        ({"mask_png": mask(64, 64)}, InvalidInput, "mask"),
        ({"image": b"not an image"}, InvalidInput, "image"),
        ({"prompt": "  "}, InvalidInput, "prompt"),
        ({"image": png(2048, 2048), "mask_png": mask(2048, 2048)}, InsufficientCredits, None),
    ],
)
async def test_a_refused_edit_leaves_no_object_no_row_and_no_charge(
    studio: Uploading, kwargs: dict[str, object], error: type[Exception], field: str | None
) -> None:
    user = await studio.user_with(2)

    with pytest.raises(error) as caught:
        await studio.edit(user, **kwargs)  # type: ignore[arg-type]

    assert getattr(caught.value, "field", None) == field
    assert studio.storage.objects == {}
    assert await studio.uploads_of(user) == []
    assert await studio.jobs_of(user) == []
    assert (await studio.account(user)).balance == 2


async def test_a_replayed_edit_keeps_the_first_uploads_and_drops_its_own(
    studio: Uploading,
) -> None:
    user = await studio.user_with(5)
    first = await studio.edit(user, key="k1")
    stored = dict(studio.storage.objects)

    again = await studio.edit(user, key="k1")

    assert again.replayed and again.job_id == first.job_id
    assert studio.storage.objects == stored
    with pytest.raises(IdempotencyMismatch):
        await studio.edit(user, key="k1", request_hash="something else")
    assert studio.storage.objects == stored
    assert len(await studio.uploads_of(user)) == 2
    assert (await studio.account(user)).balance == 4


async def test_a_captioned_edit_is_replayed_or_refused_before_its_uploads_are_captioned(
    studio: Uploading,
) -> None:
    """Captions are paid for: a retry of an answered edit, or one the balance cannot
    pay for, is answered before any upload is captioned or stored."""
    user = await studio.user_with(1)
    captioner = FixedCaptioner("a photo")
    first = await studio.edit(user, key="k1", captioner=captioner)
    stored = dict(studio.storage.objects)
    assert len(captioner.seen) == 2 and len(stored) == 2

    again = await studio.edit(user, key="k1", captioner=captioner)
    with pytest.raises(InsufficientCredits):
        await studio.edit(user, key="k2", captioner=captioner)

    assert again.replayed and again.job == first.job
    assert len(captioner.seen) == 2 and studio.storage.objects == stored
    assert len(await studio.uploads_of(user)) == 2


async def test_videos_take_the_uploads_their_input_type_needs(studio: Uploading) -> None:
    user = await studio.user_with(100)
    text = await studio.video(user)
    image = await studio.video(user, input_type=VideoInput.IMAGE, image=Upload(png()))
    frames = await studio.video(
        user,
        input_type=VideoInput.KEYFRAMES,
        first_frame=Upload(png()),
        last_frame=Upload(png(colour=(200, 10, 10))),
        resolution="720p",
    )

    jobs = [await studio.job(r.job_id) for r in (text, image, frames) if r.job_id]
    assert [j.cost for j in jobs] == [10, 10, 20]
    params = [j.params for j in jobs]
    assert all(isinstance(p, VideoParams) for p in params)
    assert [sorted(i.name for i in p.inputs()) for p in params] == [
        [],
        ["image"],
        ["first_frame", "last_frame"],
    ]
    assert len(studio.storage.objects) == 3


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_type": VideoInput.IMAGE}, "image"),
        ({"input_type": VideoInput.KEYFRAMES, "first_frame": Upload(png())}, "last_frame"),
        ({"image": Upload(png())}, "image"),
        ({"input_type": VideoInput.IMAGE, "image": Upload(b"\x89PNG\r\n\x1a\nbroken")}, "image"),
        ({"resolution": "1080p"}, "resolution"),
        ({"duration_seconds": 60}, "duration_seconds"),
    ],
)
async def test_a_refused_video_stores_nothing(
    studio: Uploading, kwargs: dict[str, object], field: str
) -> None:
    user = await studio.user_with(100)
    with pytest.raises(InvalidInput) as caught:
        await studio.video(user, **kwargs)
    assert caught.value.field == field
    assert studio.storage.objects == {}
    assert await studio.jobs_of(user) == []


async def test_a_video_the_user_cannot_afford_deletes_its_uploads(studio: Uploading) -> None:
    user = await studio.user_with(9)
    with pytest.raises(InsufficientCredits):
        await studio.video(
            user,
            input_type=VideoInput.KEYFRAMES,
            first_frame=Upload(png()),
            last_frame=Upload(png()),
        )
    assert studio.storage.objects == {} and await studio.uploads_of(user) == []


# -- processing ---------------------------------------------------------------------------


async def test_an_edit_job_hands_the_provider_its_uploads_as_signed_urls(
    studio: Uploading,
) -> None:
    user = await studio.user_with(5)
    job_id = (await studio.edit(user)).job_id
    assert job_id is not None

    done = await studio.drive(job_id)

    assert done is not None and done.status is JobStatus.SUCCEEDED
    request = studio.gpu.submitted[-1]
    assert [i.name for i in request.inputs] == ["image", "mask"]
    assert all(i.url.startswith("memory://media/") for i in request.inputs)
    assert all(i.data is None for i in request.inputs)  # a remote-style provider gets URLs only
    [asset] = await studio.media_of(job_id)
    assert (asset.kind, asset.width, asset.height) == (MediaKind.IMAGE, 128, 96)


async def test_a_video_job_stores_the_mp4_with_its_poster_and_duration(
    studio: Uploading,
) -> None:
    user = await studio.user_with(100)
    job_id = (await studio.video(user, duration_seconds=3, fps=10)).job_id
    assert job_id is not None

    done = await studio.drive(job_id)

    assert done is not None and done.status is JobStatus.SUCCEEDED, done
    [asset] = await studio.media_of(job_id)
    assert asset.kind is MediaKind.VIDEO and asset.content_type == "video/mp4"
    assert (asset.width, asset.height, asset.duration_seconds) == (854, 480, 3.0)
    assert asset.storage_key.endswith(".mp4")
    assert asset.thumbnail_key == asset.storage_key.removesuffix(".mp4") + ".poster.png"
    assert studio.storage.objects[asset.thumbnail_key][1] == "image/png"
    assert studio.storage.objects[asset.storage_key][1] == "video/mp4"
    assert (await studio.account(user)).balance == 85


class ScriptedOutputs(InMemoryGpuProvider):
    """Completes every job with the outputs it is given."""

    def __init__(self, outputs: tuple[ProviderOutput, ...]) -> None:
        super().__init__("scripted", steps=0)
        self.outputs = outputs

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        return Completed(self.outputs)


POSTER = ProviderOutput(content_type="image/png", data=tiny_png(8, 8), role=OutputRole.POSTER)


@pytest.mark.parametrize(
    "outputs",
    [
        (ProviderOutput(content_type="video/mp4", data=tiny_mp4(854, 480, 16, 8)),),  # no poster
        (ProviderOutput(content_type="video/mp4", data=tiny_mp4(854, 480, 80, 8)), POSTER),  # 10s
        (ProviderOutput(content_type="video/mp4", data=tiny_png(8, 8)), POSTER),  # not an MP4
        (ProviderOutput(content_type="video/mp4", data=b"\x00\x00\x00\x08ftyp"), POSTER),
        (POSTER,),  # a poster and nothing else
        (
            ProviderOutput(content_type="video/mp4", data=tiny_mp4(854, 480, 16, 8)),
            ProviderOutput(content_type="image/png", data=b"jpeg?", role=OutputRole.POSTER),
        ),
    ],
)
async def test_a_video_output_that_is_not_what_was_asked_fails_and_keeps_nothing(
    studio: Uploading, outputs: tuple[ProviderOutput, ...]
) -> None:
    studio.use_gpu(ScriptedOutputs(outputs))
    user = await studio.user_with(100)
    job_id = (await studio.video(user)).job_id
    assert job_id is not None

    done = await studio.drive(job_id)

    assert done is not None and done.status.terminal and done.status is not JobStatus.SUCCEEDED
    assert await studio.media_of(job_id) == []
    assert studio.storage.objects == {}
    assert (await studio.account(user)).balance == 100


async def test_an_image_job_refuses_an_mp4_output(studio: Uploading) -> None:
    mp4 = ProviderOutput(content_type="image/png", data=tiny_mp4(64, 64, 8, 8))
    studio.use_gpu(ScriptedOutputs((mp4,)))
    user = await studio.user_with(5)
    job = await studio.submitted_job(user)
    done = await studio.drive(job.id)
    assert done is not None and done.status is not JobStatus.SUCCEEDED
    assert msgspec.json.encode(done.error).find(b"video/mp4") > 0


# --- orphaned uploads ---------------------------------------------------------------------


async def expected_uploads(studio: Uploading) -> list[str]:
    async with studio.factory() as uow:
        return await uow.uploads.stale(studio.clock.now() + timedelta(days=365), limit=100)


async def test_uploads_are_settled_by_the_submission_or_their_deletion(studio: Uploading) -> None:
    user = await studio.user_with(5)
    await studio.edit(user)  # recorded with the job
    await studio.edit(user, key="k")
    await studio.edit(user, key="k")  # a replay: its own uploads are deleted
    with pytest.raises(InsufficientCredits):  # refused: its uploads are deleted
        await studio.edit(user, image=png(2048, 2048), mask_png=mask(2048, 2048))
    assert await expected_uploads(studio) == []
    assert len(studio.storage.objects) == 4 == len(await studio.uploads_of(user))


async def test_uploads_left_behind_are_swept_once_old_enough_and_only_they(
    studio: Uploading, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await studio.user_with(1)
    kept = await studio.edit(user)  # recorded: must survive every sweep
    assert kept.job_id is not None
    recorded = sorted(studio.storage.objects)

    # the next submission cannot be paid and its uploads cannot be deleted (storage
    # down): they stay behind as if the process had died between storing and committing
    async def down(key: str) -> None:
        raise StorageUnavailable("storage is down")

    monkeypatch.setattr(studio.storage, "delete", down)
    with pytest.raises(InsufficientCredits):
        await studio.edit(user)
    monkeypatch.undo()
    orphans = sorted(set(studio.storage.objects) - set(recorded))
    assert len(orphans) == 2 and sorted(await expected_uploads(studio)) == orphans

    reconciler = Reconciler(studio.factory, studio.queue, studio.clock, storage=studio.storage)
    assert (await reconciler.tick()).orphans_swept == 0  # too young: maybe still in flight
    studio.clock.advance(ORPHAN_AFTER.total_seconds() + 1)
    assert (await reconciler.tick()).orphans_swept == 2
    assert sorted(studio.storage.objects) == recorded == await studio.uploads_of(user)
    assert await expected_uploads(studio) == []
    assert await sweep_orphaned_uploads(studio.factory, studio.storage, studio.clock) == 0


async def test_an_orphan_whose_deletion_fails_is_swept_on_a_later_pass(
    studio: Uploading, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = uuid.uuid4()
    key = f"{user}/uploads/{uuid.uuid4()}.png"  # expected and stored, then the process died
    async with studio.factory() as uow:
        await uow.uploads.expect(key, user, studio.clock.now())
        await uow.commit()
    await studio.storage.put(key, png(), "image/png")
    studio.clock.advance(ORPHAN_AFTER.total_seconds() + 1)

    async def down(key: str) -> None:
        raise StorageUnavailable("storage is down")

    monkeypatch.setattr(studio.storage, "delete", down)
    assert await sweep_orphaned_uploads(studio.factory, studio.storage, studio.clock) == 0
    assert await expected_uploads(studio) == [key]
    monkeypatch.undo()
    assert await sweep_orphaned_uploads(studio.factory, studio.storage, studio.clock) == 1
    assert studio.storage.objects == {} and await expected_uploads(studio) == []
