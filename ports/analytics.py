"""Product analytics (PostHog in production): events about what users did, by user id.

The core hands events over from after-commit effects (``core/services/analytics.py``,
which also leaves out users who opted out). Analytics is never worth a failed or a
slow request: ``capture`` only queues, and nothing here ever raises for the service
being slow, down or refusing.
"""

from __future__ import annotations

from typing import Protocol

from genstudio.core.model.analytics import AnalyticsEvent


class Analytics(Protocol):
    def capture(self, event: AnalyticsEvent) -> None:
        """Queue ``event`` for sending and return at once: no network, no waiting on a
        lock held across I/O. Sending happens elsewhere (the adapter's own thread or
        task), batched. An event that cannot be queued (the queue is full) or sent
        (after the adapter's retries) is dropped and logged; this never raises."""
        ...

    async def aclose(self) -> None:
        """Send what is queued, waiting at most the adapter's close timeout, then stop.
        Events captured afterwards are dropped. Never raises."""
        ...
