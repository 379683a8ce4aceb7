"""Classifiers: what moderation asks about a text or an image.

A classifier only says what it sees (labels with scores, maybe a rewritten text);
the policy in ``core.model.moderation`` decides what that means on a surface.
Classifiers are layered by ``core.services.moderation`` (the cheap local ones first);
each is configured by the operator: none sends content anywhere it was not told to.
"""

from __future__ import annotations

from typing import Protocol

from genstudio.core.model.moderation import Classification, Surface


class ModerationUnavailable(Exception):
    """The classifier could not answer (its service down, slow, refusing us, its
    model missing). The caller decides whether to go on without it."""


class UnreadableImage(ModerationUnavailable):
    """The bytes are not an image the classifier can decode (or one too large to
    decode safely): the content's fault, not the classifier's."""


class Classifier(Protocol):
    #: a short name for the logs and the labels' ``source`` (``rules``, ``openai``, …)
    name: str

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        """Labels for ``text`` as met on ``surface``. A classifier that does not read
        texts returns an empty Classification. Raises ModerationUnavailable."""
        ...

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        """Labels for an image (PNG, JPEG or WebP bytes) as met on ``surface``. A
        classifier that does not see images returns an empty Classification. Raises
        ModerationUnavailable (also for bytes it cannot decode)."""
        ...
