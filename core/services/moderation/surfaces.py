"""Moderation plugged into the social area's seam (``core.services.social.posts.
TextReview``): captions and comments, after their own length and character checks.

A refused text is ContentRefused naming its field (``caption``, ``body``) with a strike
whose reference is where it went and a digest of it (``content_reference``): the same
refused text sent to the same post again counts once. A comment or caption whose
words a rule masks is stored masked (both surfaces accept rewrites).
"""

from __future__ import annotations

import uuid

from genstudio.core.model.moderation import Surface, content_reference
from genstudio.core.services.moderation.service import Moderation
from genstudio.core.services.social.posts import LengthAndCharacters, TextReview


class ModeratedTexts:
    """A ``TextReview``: the fields' own checks (``basic``), then moderation."""

    def __init__(self, moderation: Moderation, basic: TextReview | None = None) -> None:
        self.moderation = moderation
        self.basic: TextReview = basic or LengthAndCharacters()

    async def caption(self, text: str, *, user_id: uuid.UUID, target: str) -> str:
        checked = await self.basic.caption(text, user_id=user_id, target=target)
        return await self._moderated(checked, Surface.CAPTION, "caption", user_id, target)

    async def comment(self, text: str, *, user_id: uuid.UUID, target: str) -> str:
        checked = await self.basic.comment(text, user_id=user_id, target=target)
        return await self._moderated(checked, Surface.COMMENT, "body", user_id, target)

    async def _moderated(
        self, text: str, surface: Surface, field: str, user_id: uuid.UUID, target: str
    ) -> str:
        if not text:
            return text  # an empty caption: nothing to read
        return await self.moderation.check_text(
            text,
            surface,
            user_id=user_id,
            field=field,
            reference=content_reference(f"{target}/{surface.value}", text),
        )
