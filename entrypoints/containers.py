"""dependency-injector containers: one per adapter family, composed by ``AppContainer``.

Pools and clients are opened by the entrypoint (Litestar lifespan, worker start)
and handed in as dependencies; tests swap any adapter with ``container.override``
or by overriding a single provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dependency_injector import containers, providers
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from genstudio.adapters.imaging import PillowAvatars, PillowImageInspector
from genstudio.adapters.memory.accounts import LocalAccountDirectory
from genstudio.adapters.memory.ai import SuffixPromptEnhancer
from genstudio.adapters.notification_texts import TemplateTexts
from genstudio.adapters.observed import ObservedPushSender, ObservedUnitOfWorkFactory
from genstudio.adapters.openrouter import OpenRouterClient
from genstudio.adapters.prometheus import PrometheusMetrics
from genstudio.adapters.realtime import InProcessRealtime, RealtimeHub, RedisRealtime
from genstudio.adapters.redis import RedisStreamInspector
from genstudio.adapters.supabase.admin import SupabaseAccountDirectory
from genstudio.adapters.supabase.auth import SupabaseJwtVerifier
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.adapters.system import SystemClock
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.services.generation.service import Generation
from genstudio.core.services.moderation.surfaces import ModeratedTexts
from genstudio.core.services.notifications.delivery import PushDelivery
from genstudio.core.services.notifications.emit import Notifier
from genstudio.core.services.notifications.settings import NotificationSettings
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.core.services.reconcile import Reconciler
from genstudio.core.services.safety.accounts import AccountDeletion
from genstudio.core.services.safety.moderation import Moderation
from genstudio.core.services.safety.reports import Reports
from genstudio.core.services.social.posts import Posts
from genstudio.core.services.social.profiles import Profiles
from genstudio.core.services.social.views import Urls
from genstudio.core.services.training.photos import PhotoSets
from genstudio.core.services.training.service import Training
from genstudio.entrypoints import iap
from genstudio.entrypoints.analytics import build_analytics
from genstudio.entrypoints.factories import local_gpu
from genstudio.entrypoints.gpus import build_gpus, build_policy, build_router
from genstudio.entrypoints.moderation import build_moderation
from genstudio.entrypoints.notifications import DeliveryKicker, notification_policy, push_sender
from genstudio.entrypoints.settings import Settings
from genstudio.entrypoints.storage import build_storage
from genstudio.ports.auth import AuthVerifier
from genstudio.ports.limits import RateCounter
from genstudio.ports.metrics import Metrics
from genstudio.ports.push import PushSender
from genstudio.ports.queue import JobQueue, QueueInspector

if TYPE_CHECKING:
    from genstudio.adapters.vision import OpenCvPhotoAnalyser


# Adapters a process may never use are imported when first built, not with this module:
# a worker on Modal/Runpod never renders on the CPU (gpu_local: PyAV, numpy), never
# checks training photos (vision: OpenCV, imagehash) and counts no rate (limits); ~100 MiB
# of a worker's memory (docs/performance.md, "Worker memory").


def _photo_analyser(stored_side: int) -> OpenCvPhotoAnalyser:
    from genstudio.adapters.vision import OpenCvPhotoAnalyser

    return OpenCvPhotoAnalyser(stored_side=stored_side)


class DatabaseContainer(containers.DeclarativeContainer):
    engine = providers.Dependency(instance_of=AsyncEngine)
    uow_factory = providers.Singleton(SqlUnitOfWorkFactory, engine)


class MediaContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    # MEDIA_STORAGE's adapter, found by name among the installed ones (issue #23); unset:
    # Supabase Storage when SUPABASE_URL and SUPABASE_SERVICE_KEY are set, else local
    # files (served by the app's /media route, which serves nothing for the others)
    storage = providers.Singleton(build_storage, settings)
    inspector = providers.Singleton(PillowImageInspector)
    # the CPU renderer, by its entry point's factory; built only when chosen (build_gpus)
    gpu = providers.Singleton(local_gpu, settings)


class AiContainer(containers.DeclarativeContainer):
    """OpenRouter when OPENROUTER_API_KEY is set. Without it: no captions (a made-up
    caption would mislead search and moderation) and the memory enhancer (prompt +
    ", highly detailed"), a labelled placeholder for the embedded default."""

    settings = providers.Dependency(instance_of=Settings)
    openrouter = providers.Singleton(
        OpenRouterClient,
        api_key=providers.Callable(lambda s: s.openrouter.api_key, settings),
        base_url=providers.Callable(lambda s: s.openrouter.base_url, settings),
        caption_model=providers.Callable(lambda s: s.openrouter.caption_model, settings),
        enhance_model=providers.Callable(lambda s: s.openrouter.enhance_model, settings),
        timeout=providers.Callable(lambda s: s.openrouter.timeout, settings),
        app_url=providers.Callable(lambda s: s.server.public_url, settings),
        app_title="genstudio",
    )
    _choice = providers.Callable(
        lambda s: "openrouter" if s.openrouter.api_key else "memory", settings
    )
    captioner = providers.Selector(_choice, openrouter=openrouter, memory=providers.Object(None))
    enhancer = providers.Selector(
        _choice, openrouter=openrouter, memory=providers.Singleton(SuffixPromptEnhancer)
    )


class AuthContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    # typed by its port: mypy checks the adapter against ``AuthVerifier``
    verifier: providers.Singleton[AuthVerifier] = providers.Singleton(
        SupabaseJwtVerifier,
        secret=providers.Callable(lambda s: s.supabase.jwt_secret, settings),
        jwks_url=providers.Callable(lambda s: s.supabase.jwks_url, settings),
        issuer=providers.Callable(lambda s: s.supabase.token_issuer, settings),
        max_lifetime=providers.Callable(lambda s: s.supabase.jwt_max_lifetime, settings),
    )


class IapContainer(containers.DeclarativeContainer):
    """The product catalog and the two stores (None where not configured)."""

    settings = providers.Dependency(instance_of=Settings)
    products = providers.Singleton(
        iap.product_catalog,
        providers.Callable(lambda s: s.apple, settings),
        providers.Callable(lambda s: s.google, settings),
    )
    apple = providers.Singleton(iap.apple_store, providers.Callable(lambda s: s.apple, settings))
    google = providers.Singleton(iap.google_store, providers.Callable(lambda s: s.google, settings))


def _rate_counter(redis: Redis | None) -> RateCounter:
    # in Redis, shared by every API process; in memory in the embedded default
    from genstudio.adapters.limits import memory_counter, redis_counter

    return redis_counter(redis) if redis is not None else memory_counter()


def _realtime(redis: Redis | None, settings: Settings) -> RealtimeHub:
    # across processes through Redis streams; in this process in the embedded default
    rt = settings.realtime
    if redis is not None:
        return RedisRealtime(
            redis, queue_limit=rt.queue, history=rt.history, history_ttl=rt.history_ttl
        )
    return InProcessRealtime(queue_limit=rt.queue, history=rt.history, history_ttl=rt.history_ttl)


def _observed_push(settings: Settings, metrics: Metrics) -> PushSender | None:
    # what Expo accepted and refused, counted (issue #20)
    sender = push_sender(settings)
    return None if sender is None else ObservedPushSender(sender, metrics)


def _stream_inspector(redis: Redis | None) -> QueueInspector | None:
    return RedisStreamInspector(redis) if redis is not None else None


class AppContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    engine = providers.Dependency(instance_of=AsyncEngine)
    # in-process or taskiq: chosen by the entrypoint
    queue: providers.Dependency[JobQueue] = providers.Dependency()
    # the process's one Redis client (health, queue stats, later rate limits and
    # realtime), opened and closed by the entrypoint; None without REDIS_URL
    redis: providers.Object[Redis | None] = providers.Object(None)
    queue_inspector = providers.Singleton(_stream_inspector, redis)
    rate_counter = providers.Singleton(_rate_counter, redis)
    # the realtime port (publishing) and this process's WebSocket feeds, one object
    realtime = providers.Singleton(_realtime, redis, settings)

    clock = providers.Singleton(SystemClock)
    catalog = providers.Object(DEFAULT_CATALOG)

    database = providers.Container(DatabaseContainer, engine=engine)
    media = providers.Container(MediaContainer, settings=settings)
    auth = providers.Container(AuthContainer, settings=settings)
    iap = providers.Container(IapContainer, settings=settings)
    ai = providers.Container(AiContainer, settings=settings)

    # the process's metrics (issue #20); the units of work report the job transitions,
    # credits and holds they commit (adapters/observed)
    metrics = providers.Singleton(PrometheusMetrics)
    uow_factory = providers.Singleton(ObservedUnitOfWorkFactory, database.uow_factory, metrics)
    storage = media.storage
    inspector = media.inspector
    gpu = media.gpu
    verifier = auth.verifier
    captioner = ai.captioner
    enhancer = ai.enhancer

    gpus = providers.Singleton(build_gpus, settings, gpu.provider)  # local: built if used
    router = providers.Singleton(build_router, settings, gpus)
    policy = providers.Singleton(build_policy, settings)

    # notifications (issue #18): the outbox is written by the use cases; this process
    # delivers it right after a commit (the kicker) and on every reconciler pass
    notification_texts = providers.Singleton(TemplateTexts)
    push_sender = providers.Singleton(_observed_push, settings, metrics)
    notification_policy = providers.Singleton(notification_policy, settings)
    push_delivery = providers.Singleton(
        PushDelivery,
        uow_factory=uow_factory,
        sender=push_sender,
        texts=notification_texts,
        clock=clock,
        policy=notification_policy,
    )
    delivery_kicker = providers.Singleton(DeliveryKicker, push_delivery)
    notifier = providers.Singleton(
        Notifier,
        notification_policy,
        realtime=realtime,
        kick=providers.Callable(lambda k: k.kick, delivery_kicker),
    )
    notification_settings = providers.Singleton(
        NotificationSettings, uow_factory=uow_factory, clock=clock
    )

    # moderation (issue #19): prompts on submission, outputs before they are stored
    # (``content_moderation``: ``moderation`` is the operators' report resolutions)
    content_moderation = providers.Singleton(build_moderation, settings, uow_factory, clock)
    # product analytics (issue #20): PostHog with POSTHOG_API_KEY, else None (off);
    # tracked after commit by the use cases, sent by the SDK's thread
    analytics = providers.Singleton(build_analytics, settings, uow_factory)

    processor = providers.Singleton(
        JobProcessor,
        uow_factory=uow_factory,
        gpu=gpus,
        storage=storage,
        clock=clock,
        catalog=catalog,
        router=router,
        policy=policy,
        captioner=ai.captioner,
        moderation=content_moderation,
        poll_interval=providers.Callable(lambda s: s.jobs.poll_interval, settings),
        notifier=notifier,
        realtime=realtime,
        analytics=analytics,
    )
    # training photos (issue #16): checked in this process, on its CPUs
    photo_analyser = providers.Singleton(
        _photo_analyser,
        stored_side=providers.Callable(lambda s: s.photos.stored_side, settings),
    )
    photo_sets = providers.Singleton(
        PhotoSets,
        uow_factory=uow_factory,
        storage=storage,
        analyser=photo_analyser,
        clock=clock,
        thresholds=providers.Callable(lambda s: s.photos.thresholds, settings),
        limits=providers.Callable(lambda s: s.photos.limits, settings),
        url_ttl=providers.Callable(lambda s: s.server.signed_url_ttl, settings),
        moderation=content_moderation,  # each photo before it is stored (issue #19)
    )
    # training jobs and trained models (issue #16)
    training = providers.Singleton(
        Training,
        uow_factory=uow_factory,
        queue=queue,
        clock=clock,
        catalog=catalog,
        storage=storage,
        url_ttl=providers.Callable(lambda s: s.server.signed_url_ttl, settings),
        analytics=analytics,
        realtime=realtime,  # a submission's job.updated and credits.changed (issue #18)
    )
    # the generation routes' one dependency (a hot path: few dependencies a request)
    generation = providers.Singleton(
        Generation,
        uow_factory=uow_factory,
        queue=queue,
        clock=clock,
        catalog=catalog,
        storage=storage,
        inspector=inspector,
        enhancer=enhancer,
        captioner=captioner,
        url_ttl=providers.Callable(lambda s: s.server.signed_url_ttl, settings),
        realtime=realtime,
        moderation=content_moderation,
        analytics=analytics,
    )
    reconciler = providers.Singleton(
        Reconciler,
        uow_factory=uow_factory,
        queue=queue,
        clock=clock,
        policy=policy,
        providers=gpus,
        router=router,
        storage=storage,
        notifications=push_delivery,
    )
    # the social side (issue #17): stable URLs under the public base for public media
    social_urls = providers.Singleton(
        Urls,
        storage,
        providers.Callable(lambda s: s.server.base_url, settings),
        ttl=providers.Callable(lambda s: s.server.signed_url_ttl, settings),
    )
    profiles = providers.Singleton(
        Profiles,
        uow_factory=uow_factory,
        urls=social_urls,
        avatars=providers.Singleton(PillowAvatars),
        moderation=content_moderation,  # names, bios and avatars (issue #19)
    )
    posts = providers.Singleton(
        Posts,
        uow_factory,
        social_urls,
        review=providers.Singleton(ModeratedTexts, content_moderation),  # issue #19
        notifier=notifier,
        analytics=analytics,
    )
    # trust and safety (issue #17): reports, operators' decisions, account deletion;
    # sessions end through Supabase Auth's admin API when SUPABASE_URL and the service
    # key are set (the embedded default's locally minted tokens have no sessions)
    account_directory = providers.Selector(
        providers.Callable(
            lambda s: "supabase" if s.supabase.url and s.supabase.service_key else "local",
            settings,
        ),
        local=providers.Singleton(LocalAccountDirectory),
        supabase=providers.Singleton(
            SupabaseAccountDirectory,
            url=providers.Callable(lambda s: s.supabase.url, settings),
            service_key=providers.Callable(lambda s: s.supabase.service_key, settings),
        ),
    )
    reports = providers.Singleton(
        Reports,
        uow_factory,
        to_hide=providers.Callable(lambda s: s.safety.reports_to_hide, settings),
    )
    moderation = providers.Singleton(Moderation, uow_factory)
    account_deletion = providers.Singleton(
        AccountDeletion, uow_factory, storage, clock, account_directory
    )
