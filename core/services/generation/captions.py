"""Captions for media: best effort, never in the way of the work itself."""

from __future__ import annotations

import logging

from ports.ai import Captioner, CaptionUnavailable

log = logging.getLogger("genstudio.captions")


async def caption_of(captioner: Captioner | None, data: bytes, content_type: str) -> str | None:
    """The captioner's words for the image, or None when there is no captioner or it
    could not answer (a missing caption is only a missing search hint)."""
    if captioner is None:
        return None
    try:
        return await captioner.caption(data, content_type)
    except CaptionUnavailable as exc:
        log.info("no caption", extra={"reason": str(exc)[:200]})
        return None
