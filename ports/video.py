"""Frames of a video, for what must look at a video's pictures (moderation samples a
generated video's frames: issue #19)."""

from __future__ import annotations

from typing import Protocol


class FrameSampler(Protocol):
    async def sample(self, video: bytes, count: int) -> list[bytes]:
        """Up to ``count`` frames of the MP4 ``video`` spread evenly over its length, as
        PNG images (fewer for a shorter video; none for bytes no frame can be decoded
        from: the caller checks a video's validity itself)."""
        ...
