"""Product analytics' settings: ``POSTHOG_*`` (issue #20)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from genstudio.adapters.posthog import DEFAULT_HOST
from genstudio.entrypoints.settings.env import Env


class PostHogSettings(msgspec.Struct, frozen=True, kw_only=True):
    """PostHog when ``POSTHOG_API_KEY`` (the project key, ``phc_...``) is set; without
    it analytics is off: nothing is queued, read or sent."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("POSTHOG_",)

    api_key: str | None = None
    host: str = DEFAULT_HOST  # PostHog Cloud (US); EU or self-hosted: its ingestion URL

    @property
    def enabled(self) -> bool:
        return self.api_key is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PostHogSettings:
        e = Env(env)
        return cls(api_key=e.opt("POSTHOG_API_KEY"), host=e.text("POSTHOG_HOST", DEFAULT_HOST))
