"""Every other text and image that enters goes through the one policy (issue #19):
captions, comments, usernames, display names, bios, avatars, training photos and the
pictures of edits and videos. A refusal writes nothing (no post, no comment, no
profile change, no stored file) and counts one strike per refusal, however often the
same request is retried.

Texts meet the operator's rule list (the real classifier, its rules in the memory
store); images a small real class standing in for the image model, which refuses
pictures whose top-left pixel is red (the pictures are generated in the test)."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from PIL import Image

from genstudio.adapters.imaging import PillowAvatars, PillowImageInspector
from genstudio.adapters.memory import (
    FakeClock,
    InMemoryJobQueue,
    InMemoryStorage,
    InMemoryUnitOfWorkFactory,
)
from genstudio.core.model.errors import InsufficientCredits, InvalidInput
from genstudio.core.model.job_params import VideoInput
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.moderation import (
    Classification,
    ContentRefused,
    Label,
    Reason,
    Surface,
)
from genstudio.core.model.moderation_rules import ModerationRule, RuleAction, RuleKind
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.model.social import Visibility
from genstudio.core.model.training.photos import FaceBox, PhotoMeasures
from genstudio.core.services.generation.submit import submit_edit, submit_video
from genstudio.core.services.generation.uploads import Upload
from genstudio.core.services.moderation.rules import RuleListClassifier
from genstudio.core.services.moderation.service import Moderation
from genstudio.core.services.moderation.surfaces import ModeratedTexts
from genstudio.core.services.social.posts import Posts
from genstudio.core.services.social.profiles import ProfilePatch, Profiles
from genstudio.core.services.social.views import Urls
from genstudio.core.services.training.photos import PhotoSets
from genstudio.ports.vision import AnalysedPhoto
from tests.unit.support import add, open_account

T0 = datetime(2026, 12, 8, 12, tzinfo=UTC)
RED, BLUE = (255, 0, 0), (0, 0, 255)


RULES = (
    ("hateword", Reason.HATE, RuleAction.REFUSE),
    ("darn", Reason.HARASSMENT, RuleAction.REWRITE),
)


async def operator_rules(factory: InMemoryUnitOfWorkFactory) -> None:
    """The operator's rules: ``hateword`` refuses (hate), ``darn`` is masked."""
    async with factory() as uow:
        for pattern, label, action in RULES:
            await uow.moderation.add_rule(
                ModerationRule(
                    id=uuid.uuid4(),
                    pattern=pattern,
                    kind=RuleKind.WORD,
                    label=label,
                    action=action,
                    updated_at=T0,
                )
            )
        await uow.commit()


class RedPictures:
    """Images: a picture whose top-left pixel is pure red is sexual content; counts calls."""

    name = "red"

    def __init__(self) -> None:
        self.calls = 0

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        return Classification()

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        self.calls += 1
        with Image.open(io.BytesIO(data)) as image:
            r, g, b = image.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
        red = r > 200 and g < 60 and b < 60  # a JPEG's red is near enough
        return Classification((Label(Reason.SEXUAL, 0.99, self.name),) if red else ())


def picture(colour: tuple[int, int, int], size: int = 128, kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, kind)
    return out.getvalue()


def mask(size: int = 128) -> bytes:
    out = io.BytesIO()
    Image.new("L", (size, size), 255).save(out, "PNG")
    return out.getvalue()


class World:
    def __init__(self) -> None:
        self.factory = InMemoryUnitOfWorkFactory()
        self.clock = FakeClock(T0)
        self.storage = InMemoryStorage()
        self.queue = InMemoryJobQueue()
        self.images = RedPictures()
        rules = RuleListClassifier(self.factory, self.clock)
        self.moderation = Moderation(self.factory, self.clock, [rules, self.images])
        urls = Urls(self.storage, "http://api.test")
        self.posts = Posts(self.factory, urls, review=ModeratedTexts(self.moderation))
        self.profiles = Profiles(self.factory, urls, PillowAvatars(), moderation=self.moderation)

    async def strikes(self, user: uuid.UUID) -> list[tuple[Reason, Surface]]:
        async with self.factory() as uow:
            found = await uow.moderation.strikes(user, T0.replace(year=2000))
        return [(s.reason, s.surface) for s in found]

    async def asset(self, user: uuid.UUID) -> MediaAsset:
        asset = MediaAsset(
            id=uuid.uuid4(),
            user_id=user,
            kind=MediaKind.IMAGE,
            storage_key=f"{user}/a.png",
            content_type="image/png",
            width=64,
            height=64,
            byte_size=10,
            prompt="a fox",
            model_id="flux-schnell",
            job_id=None,
            created_at=T0,
        )
        async with self.factory() as uow:
            await uow.media.add(asset)
            await uow.commit()
        return asset


async def world() -> World:
    w = World()
    await operator_rules(w.factory)
    return w


# --- captions and comments ---------------------------------------------------------


async def test_a_refused_caption_publishes_nothing_and_counts_one_strike_per_repeat() -> None:
    w = await world()
    user = await open_account(w.factory)
    asset = await w.asset(user)
    for _ in range(2):  # the app retries the same publish
        with pytest.raises(ContentRefused) as refused:
            await w.posts.publish(
                user, None, asset_id=asset.id, caption="Hateword!",
                visibility=Visibility.PUBLIC, now=T0,
            )  # fmt: skip
        assert (refused.value.field, refused.value.reason) == ("caption", Reason.HATE)
    async with w.factory() as uow:
        assert await uow.social.user_posts(user, user, after=None, limit=10) == []
    assert await w.strikes(user) == [(Reason.HATE, Surface.CAPTION)]

    item = await w.posts.publish(
        user, None, asset_id=asset.id, caption="a darn fox", visibility=Visibility.PUBLIC, now=T0
    )
    assert item.view.post.caption == "a **** fox"  # a caption accepts a rewrite


async def test_a_refused_comment_is_not_written_and_a_different_one_is_another_strike() -> None:
    w = await world()
    author, commenter = await open_account(w.factory), await open_account(w.factory)
    post = await w.posts.publish(
        author, None, asset_id=(await w.asset(author)).id, caption="",
        visibility=Visibility.PUBLIC, now=T0,
    )  # fmt: skip
    post_id = post.view.post.id
    for body in ("hateword", "hateword", "more hateword"):
        with pytest.raises(ContentRefused) as refused:
            await w.posts.comment(commenter, None, post_id, body, T0)
        assert refused.value.field == "body"
    page = await w.posts.comments(post_id, author, after=None)
    assert page.items == []
    assert await w.strikes(commenter) == [(Reason.HATE, Surface.COMMENT)] * 2

    masked = await w.posts.comment(commenter, None, post_id, "darn nice", T0)
    assert masked.view.comment.body == "**** nice"


async def test_a_caption_too_long_is_refused_by_its_own_rule_before_moderation() -> None:
    w = await world()
    user = await open_account(w.factory)
    with pytest.raises(InvalidInput) as refused:
        await w.posts.publish(
            user, None, asset_id=(await w.asset(user)).id, caption="hateword " * 300,
            visibility=Visibility.PUBLIC, now=T0,
        )  # fmt: skip
    assert not isinstance(refused.value, ContentRefused)
    assert await w.strikes(user) == []


# --- profiles ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "field", "surface"),
    [
        (ProfilePatch(username="H4teword"), "username", Surface.USERNAME),
        (ProfilePatch(display_name="Hateword Fan"), "displayName", Surface.DISPLAY_NAME),
        (ProfilePatch(display_name="darn it"), "displayName", Surface.DISPLAY_NAME),
        (ProfilePatch(bio="I love hateword"), "bio", Surface.BIO),
    ],
    ids=["username", "display-name", "display-name-rewrite", "bio"],
)
async def test_a_refused_profile_text_changes_nothing(
    patch: ProfilePatch, field: str, surface: Surface
) -> None:
    w = await world()
    user = await open_account(w.factory)
    before = await w.profiles.mine(user, None)
    changed = msgspec.structs.replace(patch, is_private=True)  # would change with it
    with pytest.raises(ContentRefused) as refused:
        await w.profiles.edit(user, None, changed, T0)
    assert refused.value.field == field
    assert await w.profiles.mine(user, None) == before
    [(_, struck)] = await w.strikes(user)
    assert struck is surface


async def test_a_bio_may_be_stored_with_words_masked() -> None:
    w = await world()
    user = await open_account(w.factory)
    edited = await w.profiles.edit(user, None, ProfilePatch(bio="darn good at foxes"), T0)
    assert edited.bio == "**** good at foxes"
    assert await w.strikes(user) == []


async def test_a_refused_avatar_is_never_stored() -> None:
    w = await world()
    user = await open_account(w.factory)
    with pytest.raises(ContentRefused) as refused:
        await w.profiles.set_avatar(user, None, picture(RED, 600, "JPEG"), "image/jpeg")
    assert (refused.value.field, refused.value.reason) == ("avatar", Reason.SEXUAL)
    assert w.storage.objects == {}
    assert (await w.profiles.mine(user, None)).avatar_key is None
    assert await w.strikes(user) == [(Reason.SEXUAL, Surface.AVATAR)]

    kept = await w.profiles.set_avatar(user, None, picture(BLUE, 600, "JPEG"), "image/jpeg")
    assert kept.avatar_key is not None and list(w.storage.objects) == [kept.avatar_key]


# --- training photos ---------------------------------------------------------------


class Analyser:
    """Takes every picture as it is: a decoded JPEG with one face."""

    async def analyse(self, data: bytes) -> AnalysedPhoto:
        return AnalysedPhoto(
            measures=PhotoMeasures(
                width=512,
                height=512,
                sharpness=500.0,
                mean_luminance=120.0,
                dark_clipped=0.0,
                bright_clipped=0.0,
                faces=(FaceBox(x=150, y=150, width=200, height=200),),
                phash="0f0f0f0f0f0f0f0f",
            ),
            source_type="image/jpeg",
            data=data,
            content_type="image/jpeg",
            width=512,
            height=512,
        )


async def test_a_refused_training_photo_leaves_no_row_no_file_and_no_expected_upload() -> None:
    w = await world()
    sets = PhotoSets(w.factory, w.storage, Analyser(), w.clock, moderation=w.moderation)
    user = await open_account(w.factory)
    photo_set = await sets.create_set(user, "me")
    with pytest.raises(ContentRefused) as refused:
        await sets.add_photo(user, photo_set.id, picture(RED, 512, "JPEG"))
    assert (refused.value.field, refused.value.reason) == ("photo", Reason.SEXUAL)
    assert (await sets.view(user, photo_set.id)).photos == []
    assert w.storage.objects == {}
    assert w.factory.store.data.upload_intents == {}
    assert await w.strikes(user) == [(Reason.SEXUAL, Surface.TRAINING_PHOTO)]

    added = await sets.add_photo(user, photo_set.id, picture(BLUE, 512, "JPEG"))
    assert added.storage_key in w.storage.objects


# --- edit and video inputs ---------------------------------------------------------


async def jobs_of(w: World, user: uuid.UUID) -> list[Job]:
    async with w.factory() as uow:
        every = await uow.jobs.list_by_status(frozenset(JobStatus), limit=1000)
    return [j for j in every if j.user_id == user]


async def edit(w: World, user: uuid.UUID, colour: tuple[int, int, int], key: str) -> object:
    return await submit_edit(
        w.factory,
        w.queue,
        w.clock,
        DEFAULT_CATALOG,
        w.storage,
        PillowImageInspector(),
        user_id=user,
        email=None,
        model_id="sdxl-inpaint",
        prompt="a red door",
        image=Upload(picture(colour), "image/png"),
        mask=Upload(mask(), "image/png"),
        idempotency_key=key,
        request_hash=f"edit-{colour}",
        moderation=w.moderation,
    )


async def test_a_refused_edit_picture_holds_nothing_stores_nothing_and_a_retry_adds_no_strike() -> (
    None
):
    w = await world()
    user = await open_account(w.factory)
    await add(w.factory, user, 100, T0)
    for _ in range(3):  # retried with the same Idempotency-Key
        with pytest.raises(ContentRefused) as refused:
            await edit(w, user, RED, "key-1")
        assert (refused.value.field, refused.value.reason) == ("image", Reason.SEXUAL)
    async with w.factory() as uow:
        assert await uow.ledger.balance(user) == 100
    assert await jobs_of(w, user) == []
    assert w.storage.objects == {} and w.factory.store.data.upload_intents == {}
    assert await w.strikes(user) == [(Reason.SEXUAL, Surface.EDIT_INPUT)]
    # another request (a new key) refused is another strike
    with pytest.raises(ContentRefused):
        await edit(w, user, RED, "key-2")
    assert len(await w.strikes(user)) == 2

    await edit(w, user, BLUE, "key-3")
    assert len(await jobs_of(w, user)) == 1


async def test_an_edit_the_balance_refuses_is_not_classified() -> None:
    w = await world()
    user = await open_account(w.factory)
    with pytest.raises(InsufficientCredits):
        await edit(w, user, RED, "key-1")
    assert w.images.calls == 0
    assert await w.strikes(user) == []


async def test_a_refused_video_keyframe_names_its_part_and_queues_nothing() -> None:
    w = await world()
    user = await open_account(w.factory)
    await add(w.factory, user, 500, T0)
    with pytest.raises(ContentRefused) as refused:
        await submit_video(
            w.factory,
            w.queue,
            w.clock,
            DEFAULT_CATALOG,
            w.storage,
            PillowImageInspector(),
            user_id=user,
            email=None,
            model_id="wan-2.1",
            input_type=VideoInput.KEYFRAMES,
            prompt="a fox runs",
            first_frame=Upload(picture(BLUE, 256), "image/png"),
            last_frame=Upload(picture(RED, 256), "image/png"),
            idempotency_key="video-1",
            request_hash="video",
            moderation=w.moderation,
        )
    assert refused.value.field == "last_frame"  # the edge names it lastFrame
    assert w.images.calls == 2 and w.storage.objects == {}
    async with w.factory() as uow:
        assert await uow.ledger.balance(user) == 500
