"""Product analytics on PostHog through its official SDK (``posthog``).

The SDK (and ``requests`` with it, ~10 MiB) is imported with the adapter's first use:
a process with analytics off (no ``POSTHOG_API_KEY``) reads ``DEFAULT_HOST`` for its
settings and never loads it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

#: PostHog Cloud (US); EU Cloud or a self-hosted instance: its ingestion URL
DEFAULT_HOST = "https://us.i.posthog.com"

if TYPE_CHECKING:
    from genstudio.adapters.posthog.client import PostHogAnalytics


def __getattr__(name: str) -> Any:
    if name == "PostHogAnalytics":
        from genstudio.adapters.posthog.client import PostHogAnalytics

        return PostHogAnalytics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_HOST", "PostHogAnalytics"]
