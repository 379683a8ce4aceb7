"""Analytics in memory: every captured event recorded, for tests and the reference."""

from __future__ import annotations

from genstudio.core.model.analytics import AnalyticsEvent, EventName


class RecordingAnalytics:
    """Keeps what it was given (``events``, in order); after ``aclose`` it keeps
    nothing more, as a closed client sends nothing more."""

    def __init__(self) -> None:
        self.events: list[AnalyticsEvent] = []
        self.closed = False

    def capture(self, event: AnalyticsEvent) -> None:
        if not self.closed:
            self.events.append(event)

    async def aclose(self) -> None:
        self.closed = True

    def named(self, name: EventName) -> list[AnalyticsEvent]:
        return [e for e in self.events if e.name is name]
