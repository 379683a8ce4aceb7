"""Moderating one text or image: the configured classifiers in order, stopping at the
first decisive refusal; the policy's decision; a strike for each refusal a user caused.

This is the seam every area calls: generation checks prompts (``check_prompt``) and
outputs (``judge_image`` + ``record_strike``); training photos, avatars, captions,
comments, usernames and bios go through ``check_text`` / ``check_image`` with their
surface.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Sequence
from datetime import datetime

from genstudio.core.model.ids import new_id
from genstudio.core.model.moderation import (
    ALLOWED,
    Action,
    Classification,
    ContentRefused,
    Decision,
    GenerationSuspended,
    ModerationPolicy,
    Reason,
    Standing,
    Strike,
    StrikePolicy,
    Surface,
)
from genstudio.ports.clock import Clock
from genstudio.ports.moderation import Classifier, ModerationUnavailable
from genstudio.ports.unit_of_work import UnitOfWorkFactory
from genstudio.ports.video import FrameSampler

log = logging.getLogger("genstudio.moderation")


class Moderation:
    """``classifiers``: cheapest first (rules, then a local model, then a remote
    service). A classifier that is unavailable is skipped (and logged): moderation
    then rests on the others; ``fail_closed`` refuses to go on without it instead
    (ModerationUnavailable reaches the caller)."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        classifiers: Sequence[Classifier],
        *,
        policy: ModerationPolicy | None = None,
        strikes: StrikePolicy | None = None,
        remote: bool = False,
        fail_closed: bool = False,
        frames: FrameSampler | None = None,
        frames_per_video: int = 3,
    ) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.classifiers = tuple(classifiers)
        self.policy = policy or ModerationPolicy()
        self.strike_policy = strikes or StrikePolicy()
        #: a classifier calls a service outside this process: the free checks
        #: (replay, balance) go first, as before any paid call
        self.remote = remote
        self.fail_closed = fail_closed
        #: a generated video's frames, sampled over its length, are classified as its
        #: poster is (None: the poster alone stands for the video)
        self.frames = frames
        self.frames_per_video = frames_per_video

    async def judge_text(self, text: str, surface: Surface) -> Decision:
        """The policy's decision on ``text``; no side effect."""
        if not text.strip() or not self.classifiers:
            return ALLOWED
        verdicts: list[Classification] = []
        for classifier in self.classifiers:
            verdict = await self._ask(classifier, classifier.classify_text(text, surface))
            verdicts.append(verdict)
            if self.policy.decisive(surface, verdict):
                break  # refused already: the later (dearer) layers are not asked
        return self.policy.decide(surface, verdicts)

    async def judge_image(self, data: bytes, content_type: str, surface: Surface) -> Decision:
        """The policy's decision on an image; no side effect."""
        verdicts: list[Classification] = []
        for classifier in self.classifiers:
            verdict = await self._ask(
                classifier, classifier.classify_image(data, content_type, surface)
            )
            verdicts.append(verdict)
            if self.policy.decisive(surface, verdict):
                break
        return self.policy.decide(surface, verdicts)

    async def _ask(self, classifier: Classifier, call: Awaitable[Classification]) -> Classification:
        try:
            result = await call
        except ModerationUnavailable as exc:
            if self.fail_closed:
                raise
            log.warning("moderation classifier %s unavailable; skipped: %s", classifier.name, exc)
            return Classification()
        return result

    async def check_text(
        self,
        text: str,
        surface: Surface,
        *,
        user_id: uuid.UUID | None,
        field: str,
        reference: str | None = None,
    ) -> str:
        """The text to keep (the user's, or the policy's rewrite of it). Raises
        ContentRefused naming ``field``, after recording the user's strike."""
        decision = await self.judge_text(text, surface)
        if decision.refused:
            await self._refuse(decision, surface, user_id, field, reference)
        if decision.action is Action.REWRITE and decision.text is not None:
            return decision.text
        return text

    async def check_image(
        self,
        data: bytes,
        content_type: str,
        surface: Surface,
        *,
        user_id: uuid.UUID | None,
        field: str,
        reference: str | None = None,
    ) -> None:
        """Raises ContentRefused naming ``field``, after recording the user's strike."""
        decision = await self.judge_image(data, content_type, surface)
        if decision.refused:
            await self._refuse(decision, surface, user_id, field, reference)

    async def check_video(
        self,
        video: bytes,
        surface: Surface,
        *,
        user_id: uuid.UUID | None,
        field: str,
        reference: str | None = None,
    ) -> None:
        """``frames_per_video`` frames spread over the MP4 ``video``, each checked as
        :meth:`check_image` checks a picture: the first refused raises ContentRefused
        naming ``field`` (one strike: the request's reference). Nothing without a
        frame sampler, or without an image classifier to look at frames."""
        if self.frames is None or not self.classifiers:
            return
        for frame in await self.frames.sample(video, self.frames_per_video):
            await self.check_image(
                frame, "image/png", surface, user_id=user_id, field=field, reference=reference
            )

    async def check_prompt(
        self,
        user_id: uuid.UUID,
        prompt: str,
        *,
        field: str = "prompt",
        reference: str | None = None,
    ) -> None:
        """A generation's prompt: refused when the user's generation is suspended
        (GenerationSuspended) or the prompt is (ContentRefused, a strike recorded;
        ``reference``: the request's, ``request_reference``, so that a retry of it
        counts no second strike).

        The negative prompt is not checked: it names what the user does not want,
        and routinely lists what would be refused in a prompt."""
        await self.require_standing(user_id)
        await self.check_text(
            prompt, Surface.PROMPT, user_id=user_id, field=field, reference=reference
        )

    async def check_images(
        self,
        images: Sequence[tuple[str, bytes, str]],
        surface: Surface,
        *,
        user_id: uuid.UUID | None,
        reference: str | None = None,
    ) -> None:
        """``check_image`` for each ``(field, data, content_type)`` in order: the first
        refused raises ContentRefused naming its field (one strike for the request)."""
        for field, data, content_type in images:
            await self.check_image(
                data, content_type, surface, user_id=user_id, field=field, reference=reference
            )

    async def standing(self, user_id: uuid.UUID) -> Standing:
        now = self.clock.now()
        async with self.uow_factory() as uow:
            strikes = await uow.moderation.strikes(user_id, now - self.strike_policy.window)
        return self.strike_policy.standing(strikes, now)

    async def require_standing(self, user_id: uuid.UUID) -> None:
        """Raises GenerationSuspended while the user's strikes suspend them."""
        standing = await self.standing(user_id)
        if standing.suspended(self.clock.now()):
            assert standing.suspended_until is not None
            raise GenerationSuspended(standing.suspended_until)

    async def record_strike(
        self,
        user_id: uuid.UUID,
        reason: Reason,
        surface: Surface,
        *,
        reference: str | None = None,
        at: datetime | None = None,
    ) -> Strike | None:
        """Record one refusal against the user (its own unit of work). None when the
        user has a strike with the same ``reference`` already: the same refusal met
        again (a retried request) counts once."""
        strike = Strike(
            id=new_id(),
            user_id=user_id,
            reason=reason,
            surface=surface,
            created_at=at or self.clock.now(),
            reference=reference,
        )
        async with self.uow_factory() as uow:
            recorded = await uow.moderation.add_strike(strike)
            await uow.commit()
        log.info(
            "moderation refused content",
            extra={
                "user_id": str(user_id),
                "reason": reason.value,
                "surface": surface.value,
                "strike": recorded,  # False: the same refusal again, counted once
            },
        )
        return strike if recorded else None

    async def _refuse(
        self,
        decision: Decision,
        surface: Surface,
        user_id: uuid.UUID | None,
        field: str,
        reference: str | None,
    ) -> None:
        reason = decision.reason or Reason.SPAM
        if user_id is not None:
            await self.record_strike(user_id, reason, surface, reference=reference)
        raise ContentRefused(reason, field=field)
