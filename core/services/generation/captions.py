"""Captions for media: best effort, never in the way of the work itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from genstudio.ports.ai import Captioner, CaptionUnavailable

log = logging.getLogger("genstudio.captions")

#: seconds all of one request's captions may take together: well inside the request
#: deadline (GENSTUDIO_REQUEST_DEADLINE, 20 s), so a captioner that hangs costs a
#: submission a few seconds, never its answer
CAPTION_BUDGET = 6.0


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


async def captions_of(
    captioner: Captioner | None,
    images: Sequence[tuple[bytes, str]],
    *,
    budget: float = CAPTION_BUDGET,
) -> list[str | None]:
    """One caption per image (None where there is none), asked all at once and waited
    for at most ``budget`` seconds in all: a caption that fails or is late is left out
    (and its call cancelled), never in the way of the submission. Asked one after the
    other, two slow captions ran a submission into its request deadline (issue #19)."""
    if captioner is None or not images:
        return [None] * len(images)
    tasks = [asyncio.ensure_future(caption_of(captioner, data, kind)) for data, kind in images]
    _, late = await asyncio.wait(tasks, timeout=budget)
    for task in late:
        task.cancel()
    if late:
        log.info("captions left out: too late", extra={"count": len(late), "budget": budget})
        await asyncio.gather(*late, return_exceptions=True)
    return [None if task in late or task.cancelled() else task.result() for task in tasks]
