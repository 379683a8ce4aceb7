"""The words of a notification: templates per event kind and language, at the edge.

The core stores what happened (kind, data with ids, a count); an adapter renders it
in the user's language, falling back to English.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from genstudio.core.model.notifications import Notification


class Text(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    body: str


class NotificationTexts(Protocol):
    def render(self, notification: Notification, language: str) -> Text:
        """The notification's title and body in ``language`` (English for a language
        or kind without its own template). Never raises for missing data: a missing
        variable renders as an empty string."""
        ...
