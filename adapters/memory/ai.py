"""Captioner and PromptEnhancer in memory: deterministic, instant, never failing."""

from __future__ import annotations

from genstudio.ports.ai import CAPTION_CONTENT_TYPES, MAX_PROMPT, CaptionUnavailable

ENHANCEMENT_SUFFIX = ", highly detailed"


class FixedCaptioner:
    """Captions every accepted image the same way; remembers what it was shown."""

    def __init__(self, caption: str = "an image") -> None:
        self.text = caption
        self.seen: list[tuple[bytes, str]] = []

    async def caption(self, image: bytes, content_type: str) -> str:
        if content_type not in CAPTION_CONTENT_TYPES or not image:
            raise CaptionUnavailable(f"cannot caption {content_type!r} ({len(image)} bytes)")
        self.seen.append((bytes(image), content_type))
        return self.text


class SuffixPromptEnhancer:
    """Appends ``", highly detailed"``: honest about being no model at all."""

    def __init__(self, suffix: str = ENHANCEMENT_SUFFIX) -> None:
        self.suffix = suffix

    async def enhance(self, prompt: str) -> str:
        enhanced = prompt + self.suffix
        if not prompt.strip() or len(enhanced) > MAX_PROMPT:
            return prompt
        return enhanced
