"""AI helpers around generation: captions for images, richer prompts for short ones.

Both are optional extras. A job never fails because of them: a caption that cannot be
made is simply absent, and an enhancement that cannot be made leaves the user's prompt
as it was.
"""

from __future__ import annotations

from typing import Protocol

from genstudio.core.model.job_params import MAX_PROMPT

MAX_CAPTION = 500
"""The longest caption a Captioner returns, in characters."""

CAPTION_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
"""The image types every Captioner accepts."""


class CaptionUnavailable(Exception):
    """No caption this time: the image type is not accepted, or the service failed, timed
    out, was rate limited or answered nothing usable. Store no caption and carry on."""


class Captioner(Protocol):
    async def caption(self, image: bytes, content_type: str) -> str:
        """A short plain-text description of the image: one line, not empty, at most
        MAX_CAPTION characters.

        Raises CaptionUnavailable, and nothing else, whatever goes wrong (including a
        ``content_type`` outside CAPTION_CONTENT_TYPES): callers may ignore it.
        """
        ...


class PromptEnhancer(Protocol):
    async def enhance(self, prompt: str) -> str:
        """A richer prompt for the same picture, or ``prompt`` itself.

        Never raises for a service failure: on a timeout, an error, a rate limit, or an
        answer that is malformed, empty or longer than MAX_PROMPT characters, it returns
        ``prompt`` unchanged (and logs why). The result is never empty when ``prompt``
        is not, and never longer than ``max(len(prompt), MAX_PROMPT)``.
        """
        ...


__all__ = [
    "CAPTION_CONTENT_TYPES",
    "MAX_CAPTION",
    "MAX_PROMPT",
    "CaptionUnavailable",
    "Captioner",
    "PromptEnhancer",
]
