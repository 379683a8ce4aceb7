"""The analytics port on PostHog's Python SDK (issue #20).

The SDK keeps its own queue and a background consumer thread that sends batches to
the capture API (``POST {host}/batch/``, gzip, the project key in the body, retries
with backoff on 5xx, 408, 429 and network errors). ``capture`` only puts the event on
that queue (a full queue drops it): it never waits on the network and never raises,
so it may be called on the event loop. ``aclose`` makes the SDK send what it holds
and stop its thread (``shutdown``), waited for in a thread for at most
``close_timeout`` seconds so that a PostHog that does not answer cannot hold the
process's shutdown.

What is sent: the event's name, the user id as ``distinct_id``, the event's own id
(``uuid``: PostHog drops a copy that a retried batch sends again), its time and its
properties (``core.model.analytics``: no text the user wrote, no personal data). The
SDK adds its library name and version, the Python version and the server's OS; GeoIP
is off (the server's address would be taken for the user's), and nothing else of the
SDK's (exception autocapture, feature flags, contexts) is used.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from posthog import CaptureMode, Posthog

from genstudio.adapters.posthog import DEFAULT_HOST
from genstudio.core.model.analytics import AnalyticsEvent

log = logging.getLogger("genstudio.analytics.posthog")

#: PostHog Cloud (US) ingestion; ``POSTHOG_HOST`` names another (EU, self-hosted)


class PostHogAnalytics:
    """``flush_at``: events that make a batch; ``flush_interval``: seconds a partial
    batch waits; ``timeout``: seconds per request; ``max_retries``: tries again per
    batch; ``max_queue_size``: events held at most (more are dropped)."""

    def __init__(
        self,
        api_key: str,
        *,
        host: str = DEFAULT_HOST,
        flush_at: int = 100,
        flush_interval: float = 2.0,
        timeout: float = 5.0,
        max_retries: int = 3,
        max_queue_size: int = 10_000,
        close_timeout: float = 10.0,
    ) -> None:
        self.close_timeout = close_timeout
        self.failed_batches = 0
        self._client = Posthog(
            api_key,
            host=host,
            flush_at=flush_at,
            flush_interval=flush_interval,
            gzip=True,
            timeout=timeout,
            max_retries=max_retries,
            max_queue_size=max_queue_size,
            on_error=self._failed,
            disable_geoip=True,
            enable_exception_autocapture=False,
            # the /batch/ protocol, whatever POSTHOG_CAPTURE_MODE says
            capture_mode=CaptureMode.V0,
        )
        self._closed = False

    def capture(self, event: AnalyticsEvent) -> None:
        if self._closed:
            return
        try:
            self._client.capture(
                event.name.value,
                distinct_id=str(event.user_id),
                properties=dict(event.properties),
                timestamp=event.at,
                uuid=str(event.id),
            )
        except Exception:  # the SDK's own guard failed: drop the event, never the request
            log.exception("posthog capture failed")

    def _failed(self, error: Exception, batch: list[Any]) -> None:
        # called on the SDK's thread after its retries: the batch is dropped
        self.failed_batches += 1
        log.warning("posthog dropped a batch of %d events: %s", len(batch), error)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        done = threading.Event()

        def shutdown() -> None:
            try:
                self._client.shutdown()
            except Exception:
                log.exception("posthog shutdown failed")
            finally:
                done.set()

        # a daemon thread: one still waiting on PostHog does not keep the process alive
        threading.Thread(target=shutdown, name="posthog-shutdown", daemon=True).start()
        if not await asyncio.to_thread(done.wait, self.close_timeout):
            log.warning("posthog did not finish sending within %.0f s", self.close_timeout)
