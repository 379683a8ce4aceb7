"""Profiles: my profile (read, edit, avatar), another user's public profile, my
stats, my content and what I liked.

Editing takes a patch whose absent fields stay as they are (``UNSET`` at the edge
becomes ``None`` here, a field in ``clear`` is set to null). A username is stored
lower case, unique case-insensitively (the database's unique index decides between
two claims at once), and changes at most once per ``USERNAME_COOLDOWN``.

Usernames, display names and bios, and avatars, pass moderation (issue #19) after
their own checks and before anything is written or stored: a refusal is a 422
``content_refused`` naming the field, with a strike; a bio may come back with words
masked (a rewrite), a name may not.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.errors import AlreadyTaken, InvalidInput, NotFound
from genstudio.core.model.ids import new_id
from genstudio.core.model.media import MediaKind
from genstudio.core.model.moderation import Surface, content_reference
from genstudio.core.model.social import (
    MAX_BIO,
    MAX_DISPLAY_NAME,
    ContentFilter,
    Key,
    PostView,
    ProfileCounts,
    SocialProfile,
    Stats,
    check_language,
    check_text,
    check_username,
    may_rename,
)
from genstudio.core.services.moderation.service import Moderation
from genstudio.core.services.social.views import AssetItem, Page, PostItem, Urls
from genstudio.ports.avatars import AvatarImages
from genstudio.ports.unit_of_work import UnitOfWorkFactory


class ProfilePatch(msgspec.Struct, frozen=True, kw_only=True):
    """What to change; ``None`` leaves a field as it is, ``clear`` names the fields to
    set to null (display name, bio, language, avatar)."""

    username: str | None = None
    display_name: str | None = None
    bio: str | None = None
    is_private: bool | None = None
    language: str | None = None
    content_filters: tuple[str, ...] | None = None
    analytics: bool | None = None  # product analytics about me (issue #20)
    clear: frozenset[str] = frozenset()


class PublicProfile(msgspec.Struct, frozen=True, kw_only=True):
    profile: SocialProfile
    counts: ProfileCounts
    avatar_url: str | None
    posts: Page[PostItem]
    posts_hidden: bool  # a private account: its posts are its own


def _filters(values: tuple[str, ...]) -> tuple[ContentFilter, ...]:
    try:
        return tuple(sorted({ContentFilter(v) for v in values}))
    except ValueError:
        known = ", ".join(f.value for f in ContentFilter)
        raise InvalidInput(f"content filters are among: {known}", field="contentFilters") from None


def apply_patch(profile: SocialProfile, patch: ProfilePatch, now: datetime) -> SocialProfile:
    """The profile after ``patch``: every rule but the username's uniqueness."""
    changes: dict[str, object] = {}
    if patch.username is not None:
        name = check_username(patch.username)
        if name != profile.username:
            until = may_rename(profile, now)
            if until is not None:
                raise InvalidInput(
                    f"the username can change again after {until.isoformat()}", field="username"
                )
            changes["username"] = name
            changes["username_changed_at"] = now
    if patch.display_name is not None:
        shown = check_text(patch.display_name, "displayName", MAX_DISPLAY_NAME, newlines=False)
        changes["display_name"] = shown or None
    if patch.bio is not None:
        changes["bio"] = check_text(patch.bio, "bio", MAX_BIO) or None
    if patch.is_private is not None:
        changes["is_private"] = patch.is_private
    if patch.language is not None:
        changes["language"] = check_language(patch.language)
    if patch.content_filters is not None:
        changes["content_filters"] = _filters(patch.content_filters)
    if patch.analytics is not None:
        changes["analytics"] = patch.analytics
    for name in patch.clear:
        if name not in {"display_name", "bio", "language", "avatar_key"}:
            raise InvalidInput(f"{name} cannot be null", field=name)
        changes[name] = None
    return msgspec.structs.replace(profile, **changes)


#: the texts of a profile moderation reads: the patch's field, its wire name, the surface
_MODERATED = (
    ("username", "username", Surface.USERNAME),
    ("display_name", "displayName", Surface.DISPLAY_NAME),
    ("bio", "bio", Surface.BIO),
)


class Profiles:
    """``moderation``: None checks nothing but the fields' own rules."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        urls: Urls,
        avatars: AvatarImages,
        *,
        moderation: Moderation | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.urls = urls
        self.avatars = avatars
        self.moderation = moderation

    async def _moderated(self, user_id: uuid.UUID, patch: ProfilePatch) -> ProfilePatch:
        """The patch with its texts through moderation, before the transaction (a
        classifier may be a remote call: no connection is held meanwhile). Each text's
        own rules go first (``apply_patch`` checks them again: free). Raises
        InvalidInput or ContentRefused naming the field; a bio may come back rewritten."""
        if self.moderation is None:
            return patch
        changes: dict[str, str] = {}
        for name, wire, surface in _MODERATED:
            value: str | None = getattr(patch, name)
            if value is None:
                continue
            if surface is Surface.USERNAME:
                text = check_username(value)
            elif surface is Surface.DISPLAY_NAME:
                text = check_text(value, wire, MAX_DISPLAY_NAME, newlines=False)
            else:
                text = check_text(value, wire, MAX_BIO)
            if not text:
                continue  # cleared
            kept = await self.moderation.check_text(
                text,
                surface,
                user_id=user_id,
                field=wire,
                reference=content_reference(f"profile/{surface.value}", text),
            )
            if kept != text:
                changes[name] = kept
        return msgspec.structs.replace(patch, **changes) if changes else patch

    async def mine(self, user_id: uuid.UUID, email: str | None) -> SocialProfile:
        async with self.uow_factory() as uow:
            await uow.profiles.ensure(user_id, email)
            profile = await uow.social.get_profile(user_id)
            await uow.commit()
        assert profile is not None  # ensured above
        return profile

    async def edit(
        self, user_id: uuid.UUID, email: str | None, patch: ProfilePatch, now: datetime
    ) -> SocialProfile:
        """Raises InvalidInput (the field at fault, a username in its cooldown),
        ContentRefused (moderation) or AlreadyTaken (``username``: someone else holds it)."""
        patch = await self._moderated(user_id, patch)
        async with self.uow_factory() as uow:
            await uow.profiles.ensure(user_id, email)
            current = await uow.social.get_profile(user_id)
            assert current is not None
            updated = apply_patch(current, patch, now)
            if updated.username is not None and updated.username != current.username:
                holder = await uow.social.find_username(updated.username)
                if holder is not None and holder.user_id != user_id:
                    raise AlreadyTaken(f"{updated.username!r} is taken", field="username")
            await uow.social.save_profile(updated)
            await uow.commit()
        return updated

    async def set_avatar(
        self, user_id: uuid.UUID, email: str | None, data: bytes, content_type: str | None
    ) -> SocialProfile:
        """Stores the normalised picture under a new key (a stable URL per version:
        caches never serve an old face), then deletes the previous one. A picture
        moderation refuses (ContentRefused, ``avatar``) is never stored."""
        picture = await self.avatars.avatar(data, content_type, field="avatar")
        if self.moderation is not None:
            await self.moderation.check_image(
                picture,
                "image/jpeg",
                Surface.AVATAR,
                user_id=user_id,
                field="avatar",
                reference=content_reference("avatar", picture),
            )
        key = f"{user_id}/avatars/{new_id().hex}.jpg"
        await self.urls.storage.put(key, picture, "image/jpeg")
        try:
            async with self.uow_factory() as uow:
                await uow.profiles.ensure(user_id, email)
                current = await uow.social.get_profile(user_id)
                assert current is not None
                updated = msgspec.structs.replace(current, avatar_key=key)
                await uow.social.save_profile(updated)
                await uow.commit()
        except BaseException:
            await self.urls.storage.delete(key)  # nothing left behind by a failed request
            raise
        if current.avatar_key:
            await self.urls.storage.delete(current.avatar_key)
        return updated

    async def public(
        self, username: str, viewer: uuid.UUID | None, *, after: Key | None, limit: int
    ) -> PublicProfile:
        """A blocked pair, or a name nobody holds: NotFound."""
        name = username.strip().lower()
        async with self.uow_factory() as uow:
            profile = await uow.social.find_username(name)
            if profile is None:
                raise NotFound(f"no user {username!r}")
            if viewer is not None and await uow.social.blocked_between(viewer, profile.user_id):
                raise NotFound(f"no user {username!r}")
            counts = await uow.social.counts(profile.user_id)
            hidden = profile.is_private and viewer != profile.user_id
            views: list[PostView] = []
            if not hidden:
                views = await uow.social.user_posts(
                    profile.user_id, viewer, after=after, limit=limit + 1
                )
        public = not profile.is_private
        items = [await self.urls.item(v, public=public) for v in views[:limit]]
        return PublicProfile(
            profile=profile,
            counts=counts,
            avatar_url=self.urls.avatar_of(profile),
            posts=_page(items, views, limit),
            posts_hidden=hidden,
        )

    async def stats(self, user_id: uuid.UUID) -> Stats:
        async with self.uow_factory() as uow:
            return await uow.social.stats(user_id)

    async def content(
        self, user_id: uuid.UUID, *, kind: MediaKind | None, after: Key | None, limit: int
    ) -> Page[AssetItem]:
        async with self.uow_factory() as uow:
            assets = await uow.social.my_media(user_id, kind=kind, after=after, limit=limit + 1)
        items = [await self.urls.asset(a) for a in assets[:limit]]
        more = len(assets) > limit
        last = assets[limit - 1] if more else None
        return Page(items=items, next_key=(last.created_at, last.id) if last else None)

    async def liked(self, user_id: uuid.UUID, *, after: Key | None, limit: int) -> Page[PostItem]:
        async with self.uow_factory() as uow:
            views = await uow.social.liked_posts(user_id, after=after, limit=limit + 1)
            me = await uow.social.get_profile(user_id)
        mine_public = me is not None and not me.is_private
        items = [
            await self.urls.item(v, public=v.post.user_id != user_id or mine_public)
            for v in views[:limit]
        ]
        more = len(views) > limit
        last = views[limit - 1] if more else None
        key = (last.liked_at or last.post.created_at, last.post.id) if last else None
        return Page(items=items, next_key=key)


def _page(items: list[PostItem], views: list[PostView], limit: int) -> Page[PostItem]:
    """A page of ``limit`` from ``limit + 1`` rows read: the extra one says there is more."""
    more = len(views) > limit
    last = views[limit - 1].post if more else None
    return Page(items=items, next_key=(last.created_at, last.id) if last else None)
