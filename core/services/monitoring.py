"""The read side of the metrics endpoint: what Postgres and the queue know now.

Read at scrape time by the process that serves ``/metrics``, so every API process
gives the same numbers, whichever processes ran the jobs. A database or a Redis
that does not answer leaves its part empty and says why: the process's own
metrics are still served.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from genstudio.core.model.queueing import QueueStats
from genstudio.ports.clock import Clock
from genstudio.ports.queue import QueueInspector, StreamDepth
from genstudio.ports.unit_of_work import UnitOfWorkFactory

#: the windows of the recent successes and failures read from Postgres
SNAPSHOT_WINDOWS: dict[str, timedelta] = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1)}


class QueueSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    stats: QueueStats | None = None  # None: the database did not answer
    stats_error: str | None = None
    streams: list[StreamDepth] | None = None  # None: no Redis queue, or it did not answer
    streams_error: str | None = None


async def queue_snapshot(
    uow_factory: UnitOfWorkFactory, clock: Clock, streams: QueueInspector | None
) -> QueueSnapshot:
    """Jobs by kind and state, queue depths and waits, recent outcomes (Postgres), and
    the queue's streams (Redis, when the queue is there)."""
    stats: QueueStats | None = None
    stats_error: str | None = None
    try:
        async with uow_factory() as uow:
            stats = await uow.jobs.stats(now=clock.now(), windows=SNAPSHOT_WINDOWS)
    except Exception as exc:  # the database is down: the rest is still worth serving
        stats_error = f"{type(exc).__name__}: {exc}"[:300]
    depths: list[StreamDepth] | None = None
    streams_error: str | None = None
    if streams is not None:
        try:
            depths = await streams.streams()
        except Exception as exc:
            streams_error = f"{type(exc).__name__}: {exc}"[:300]
    return QueueSnapshot(
        stats=stats, stats_error=stats_error, streams=depths, streams_error=streams_error
    )
