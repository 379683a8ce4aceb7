"""Product analytics on PostHog through its official SDK (``posthog``)."""

from genstudio.adapters.posthog.client import DEFAULT_HOST, PostHogAnalytics

__all__ = ["DEFAULT_HOST", "PostHogAnalytics"]
