"""Product analytics wired from the settings (issue #20): PostHog with
``POSTHOG_API_KEY``, else off (None: the use cases track nothing, at no cost)."""

from __future__ import annotations

from genstudio.core.services.analytics import Tracker
from genstudio.entrypoints.settings import Settings
from genstudio.ports.unit_of_work import UnitOfWorkFactory


def build_analytics(settings: Settings, uow_factory: UnitOfWorkFactory) -> Tracker | None:
    posthog = settings.posthog
    if posthog.api_key is None:
        return None
    from genstudio.adapters.posthog import PostHogAnalytics

    return Tracker(PostHogAnalytics(posthog.api_key, host=posthog.host), uow_factory)


async def close_analytics(tracker: Tracker | None) -> None:
    """At shutdown: what is queued is handed over and sent (each step bounded)."""
    if tracker is not None:
        await tracker.aclose()
