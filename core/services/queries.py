"""The read side: what the API shows, read through the ports and never written.

Small functions taking their ports, one per view; each opens its own unit of work
and commits nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

import msgspec

from genstudio.core.model.credits import LedgerEntry
from genstudio.core.model.events import JobEvent
from genstudio.core.model.jobs import Job
from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.purchases.products import ProductCatalog
from genstudio.core.model.queueing import STATS_WINDOWS, QueueStats
from genstudio.core.model.routing import BreakerState, ProviderRouter
from genstudio.core.services.generation.jobs import owned
from genstudio.core.services.purchases.subscriptions import SubscriptionView, subscription_of
from genstudio.core.services.reconcile import provider_health
from genstudio.ports.clock import Clock
from genstudio.ports.gpu import GpuProvider
from genstudio.ports.queue import QueueInspector, StreamDepth
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWorkFactory

# --- generation ---------------------------------------------------------------------


async def get_job(uow_factory: UnitOfWorkFactory, *, user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """The user's own job. Raises NotFound for another user's job, as for none."""
    async with uow_factory() as uow:
        return owned(await uow.jobs.get(job_id), user_id, job_id)


class SignedMedia(msgspec.Struct, frozen=True, kw_only=True):
    """A job's result, with a URL the app may fetch it from until ``url_expires_at``."""

    asset: MediaAsset
    url: str
    url_expires_at: datetime
    thumbnail_url: str | None = None  # a video's poster frame, signed alike


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    job: Job
    media: list[SignedMedia]


async def job_view(
    uow_factory: UnitOfWorkFactory,
    storage: MediaStorage,
    clock: Clock,
    *,
    user_id: uuid.UUID,
    job_id: uuid.UUID,
    url_ttl: int,
) -> JobView:
    """The user's job with its results, each signed for ``url_ttl`` seconds (signed
    after the unit of work ended: no connection is held while storage answers).
    Raises NotFound as ``get_job``."""
    async with uow_factory() as uow:
        job = owned(await uow.jobs.get(job_id), user_id, job_id)
        media = await uow.media.list_for_job(job.id) if job.asset_ids else []
    expires_at = clock.now() + timedelta(seconds=url_ttl)
    signed = []
    for asset in media:
        poster = asset.thumbnail_key if asset.kind is MediaKind.VIDEO else None
        signed.append(
            SignedMedia(
                asset=asset,
                url=await storage.signed_url(asset.storage_key, url_ttl),
                url_expires_at=expires_at,
                thumbnail_url=await storage.signed_url(poster, url_ttl) if poster else None,
            )
        )
    return JobView(job=job, media=signed)


async def job_events(
    uow_factory: UnitOfWorkFactory, *, user_id: uuid.UUID, job_id: uuid.UUID
) -> list[JobEvent]:
    """What happened to the user's job, oldest first. Raises NotFound as ``get_job``."""
    async with uow_factory() as uow:
        job = owned(await uow.jobs.get(job_id), user_id, job_id)
        return await uow.job_events.list_for_job(job.id)


# --- account ------------------------------------------------------------------------


class LedgerPage(msgspec.Struct, frozen=True, kw_only=True):
    entries: list[LedgerEntry]
    more: bool  # entries older than the last one exist


async def ledger_page(
    uow_factory: UnitOfWorkFactory,
    user_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> LedgerPage:
    """The user's ledger, newest first, ``limit`` entries after ``before``."""
    async with uow_factory() as uow:
        entries = await uow.ledger.entries(user_id, limit=limit + 1, before=before)
    return LedgerPage(entries=entries[:limit], more=len(entries) > limit)


async def subscription(
    uow_factory: UnitOfWorkFactory, user_id: uuid.UUID, catalog: ProductCatalog
) -> SubscriptionView | None:
    """The user's headline subscription, if they ever had one we sell."""
    async with uow_factory() as uow:
        return await subscription_of(uow, user_id, catalog)


# --- media --------------------------------------------------------------------------


async def download_name(uow_factory: UnitOfWorkFactory, key: str) -> str:
    """The file name a download is saved under: ``<job id>-<n>.png`` / ``.mp4`` for the
    n-th result of a job (a video's poster: ``<job id>-<n>-poster.png``); the object's
    own name for anything else (an upload)."""
    name = key.rsplit("/", 1)[-1]
    stem, _, extension = name.partition(".")  # "<id>.poster.png": "<id>", "poster.png"
    try:
        media_id = uuid.UUID(stem)
    except ValueError:
        return name
    async with uow_factory() as uow:
        asset = await uow.media.get(media_id)
        if asset is None or asset.job_id is None:
            return name
        siblings = await uow.media.list_for_job(asset.job_id)
    n = next((i for i, a in enumerate(siblings, 1) if a.id == media_id), 1)
    poster, _, suffix = extension.rpartition(".")
    return f"{asset.job_id}-{n}{'-poster' if poster else ''}.{suffix}"


# --- operations ---------------------------------------------------------------------


async def dead_letters(uow_factory: UnitOfWorkFactory, *, limit: int) -> list[Job]:
    """Jobs that used up their attempts, newest first."""
    async with uow_factory() as uow:
        return await uow.jobs.dead_letters(limit=limit)


class ProviderState(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    healthy: bool
    breaker: BreakerState
    detail: str = ""


class QueueBoard(msgspec.Struct, frozen=True, kw_only=True):
    stats: QueueStats
    providers: list[ProviderState]
    streams: list[StreamDepth]
    #: why ``streams`` is empty when the queue did not answer (the rest is Postgres's)
    streams_error: str | None = None


async def queue_board(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    providers: Mapping[str, GpuProvider],
    router: ProviderRouter,
    streams: QueueInspector | None,
) -> QueueBoard:
    """Queue depths, jobs in flight, dead letters and rates (Postgres), each provider's
    health and breaker, and the queue's streams (none without a Redis queue)."""
    now = clock.now()
    async with uow_factory() as uow:
        stats = await uow.jobs.stats(now=now, windows=STATS_WINDOWS)
    # all at once, each bounded: a provider that stalls is unhealthy, not a slow page
    states = [
        ProviderState(
            name=name,
            healthy=health.healthy,
            breaker=router.view(name).breaker.state(now),
            detail=health.detail,
        )
        for name, health in (await provider_health(providers)).items()
    ]
    depths: list[StreamDepth] = []
    error: str | None = None
    if streams is not None:
        try:
            depths = await streams.streams()
        except Exception as exc:  # Redis down: the rest of the board still answers
            error = f"{type(exc).__name__}: {exc}"
    return QueueBoard(stats=stats, providers=states, streams=depths, streams_error=error)
