"""Small typed bridges from Litestar's dependency injection to the container.

Each port or service a handler may need is one dependency, registered once in
``entrypoints.http.app.DEPENDENCIES`` under the key its handler parameter is named
by; a handler declares what it uses by type (``uow_factory: UowFactoryDep``) and
never reaches into the container. The providers read the container the lifespan
put on ``app.state`` and are synchronous and cheap: Litestar resolves a handler's
independent dependencies of one level together in an anyio task group (~0.1 ms a
request when there are several), so a hot handler should depend on few.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from genstudio.adapters.realtime import RealtimeHub
from genstudio.core.model.errors import Unauthorized
from genstudio.core.model.pricing import Catalog
from genstudio.core.model.purchases.products import ProductCatalog
from genstudio.core.model.routing import ProviderRouter
from genstudio.core.services.analytics import Tracker
from genstudio.core.services.generation.service import Generation
from genstudio.core.services.notifications.emit import Kick
from genstudio.core.services.notifications.settings import NotificationSettings
from genstudio.core.services.safety.accounts import AccountDeletion
from genstudio.core.services.safety.moderation import Moderation
from genstudio.core.services.safety.reports import Reports
from genstudio.core.services.social.posts import Posts
from genstudio.core.services.social.profiles import Profiles
from genstudio.core.services.training.photos import PhotoSets
from genstudio.core.services.training.service import Training
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.access import note_user
from genstudio.entrypoints.http.limits import PRINCIPAL_STATE
from genstudio.entrypoints.settings import Settings
from genstudio.ports.ai import Captioner, PromptEnhancer
from genstudio.ports.auth import AuthVerifier, Principal
from genstudio.ports.clock import Clock
from genstudio.ports.gpu import GpuProvider
from genstudio.ports.imaging import ImageInspector
from genstudio.ports.notification_texts import NotificationTexts
from genstudio.ports.queue import JobQueue, QueueInspector
from genstudio.ports.storage import MediaStorage
from genstudio.ports.stores import AppleStore, GoogleStore
from genstudio.ports.unit_of_work import UnitOfWorkFactory


def _container(state: State) -> AppContainer:
    container: AppContainer = state.container
    return container


def provide_settings(state: State) -> Settings:
    provided: Settings = _container(state).settings()
    return provided


def provide_uow_factory(state: State) -> UnitOfWorkFactory:
    provided: UnitOfWorkFactory = _container(state).uow_factory()
    return provided


def provide_clock(state: State) -> Clock:
    provided: Clock = _container(state).clock()
    return provided


def provide_queue(state: State) -> JobQueue:
    provided: JobQueue = _container(state).queue()
    return provided


def provide_storage(state: State) -> MediaStorage:
    provided: MediaStorage = _container(state).storage()
    return provided


def provide_inspector(state: State) -> ImageInspector:
    provided: ImageInspector = _container(state).inspector()
    return provided


def provide_catalog(state: State) -> Catalog:
    provided: Catalog = _container(state).catalog()
    return provided


def provide_products(state: State) -> ProductCatalog:
    provided: ProductCatalog = _container(state).iap.products()
    return provided


def provide_apple_store(state: State) -> AppleStore | None:
    provided: AppleStore | None = _container(state).iap.apple()
    return provided


def provide_google_store(state: State) -> GoogleStore | None:
    provided: GoogleStore | None = _container(state).iap.google()
    return provided


def provide_verifier(state: State) -> AuthVerifier:
    provided: AuthVerifier = _container(state).verifier()
    return provided


def provide_enhancer(state: State) -> PromptEnhancer:
    provided: PromptEnhancer = _container(state).enhancer()
    return provided


def provide_captioner(state: State) -> Captioner | None:
    provided: Captioner | None = _container(state).captioner()
    return provided


def provide_gpus(state: State) -> Mapping[str, GpuProvider]:
    provided: Mapping[str, GpuProvider] = _container(state).gpus()
    return provided


def provide_generation(state: State, principal: SkipValidation[Principal]) -> Generation:
    """For signed-in routes only: it depends on ``principal``, which it does not use, so
    that Litestar resolves verifier, principal and this one after the other (a call
    each) rather than this beside the verifier in an anyio task group, ~0.1 ms of CPU
    on every submission (``bench/inprocess.py``: 808-824 against 886-928 µs)."""
    provided: Generation = _container(state).generation()
    return provided


def provide_notification_settings(state: State) -> NotificationSettings:
    provided: NotificationSettings = _container(state).notification_settings()
    return provided


def provide_push_kick(state: State) -> Kick:
    """Starts a push delivery pass after a commit that told someone something."""
    provided: Kick = _container(state).delivery_kicker().kick
    return provided


def provide_analytics(state: State) -> Tracker | None:
    """Product analytics (issue #20); None where POSTHOG_API_KEY is unset."""
    provided: Tracker | None = _container(state).analytics()
    return provided


def provide_notification_texts(state: State) -> NotificationTexts:
    provided: NotificationTexts = _container(state).notification_texts()
    return provided


def provide_photo_sets(state: State) -> PhotoSets:
    provided: PhotoSets = _container(state).photo_sets()
    return provided


def provide_training(state: State) -> Training:
    provided: Training = _container(state).training()
    return provided


def provide_posts(state: State) -> Posts:
    provided: Posts = _container(state).posts()
    return provided


def provide_profiles(state: State) -> Profiles:
    provided: Profiles = _container(state).profiles()
    return provided


def provide_reports(state: State) -> Reports:
    provided: Reports = _container(state).reports()
    return provided


def provide_moderation(state: State) -> Moderation:
    provided: Moderation = _container(state).moderation()
    return provided


def provide_account_deletion(state: State) -> AccountDeletion:
    provided: AccountDeletion = _container(state).account_deletion()
    return provided


def provide_router(state: State) -> ProviderRouter:
    provided: ProviderRouter = _container(state).router()
    return provided


def provide_queue_inspector(state: State) -> QueueInspector | None:
    provided: QueueInspector | None = _container(state).queue_inspector()
    return provided


def provide_engine(state: State) -> AsyncEngine:
    provided: AsyncEngine = _container(state).engine()
    return provided


def provide_realtime_hub(state: State) -> RealtimeHub:
    provided: RealtimeHub = _container(state).realtime()
    return provided


def provide_redis(state: State) -> Redis | None:
    provided: Redis | None = _container(state).redis()
    return provided


async def get_principal(request: Request[Any, Any, Any], verifier: AuthVerifierDep) -> Principal:
    # depending on ``verifier`` (not on ``state``) puts the token check in a batch
    # after the ports', never beside them
    checked = request.scope.get("state", {}).get(PRINCIPAL_STATE)
    if isinstance(checked, Principal):  # verified by the rate limits, before the body
        note_user(checked.user_id)
        return checked
    if isinstance(checked, Unauthorized):
        raise checked
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    principal: Principal = await verifier.verify(token.strip())
    note_user(principal.user_id)  # for the request's access line
    return principal


def _sync(provider: Any) -> Provide:
    return Provide(provider, sync_to_thread=False)


#: every dependency a handler may name, registered once on the app
DEPENDENCIES: dict[str, Provide] = {
    "principal": Provide(get_principal),
    "settings": _sync(provide_settings),
    "uow_factory": _sync(provide_uow_factory),
    "clock": _sync(provide_clock),
    "queue": _sync(provide_queue),
    "storage": _sync(provide_storage),
    "inspector": _sync(provide_inspector),
    "catalog": _sync(provide_catalog),
    "products": _sync(provide_products),
    "apple_store": _sync(provide_apple_store),
    "google_store": _sync(provide_google_store),
    "verifier": _sync(provide_verifier),
    "enhancer": _sync(provide_enhancer),
    "captioner": _sync(provide_captioner),
    "gpus": _sync(provide_gpus),
    "generation": _sync(provide_generation),
    "photo_sets": _sync(provide_photo_sets),
    "notification_settings": _sync(provide_notification_settings),
    "notification_texts": _sync(provide_notification_texts),
    "push_kick": _sync(provide_push_kick),
    "analytics": _sync(provide_analytics),
    "training": _sync(provide_training),
    "posts": _sync(provide_posts),
    "profiles": _sync(provide_profiles),
    "reports": _sync(provide_reports),
    "moderation": _sync(provide_moderation),
    "account_deletion": _sync(provide_account_deletion),
    "router": _sync(provide_router),
    "queue_inspector": _sync(provide_queue_inspector),
    "engine": _sync(provide_engine),
    "redis": _sync(provide_redis),
    "realtime_hub": _sync(provide_realtime_hub),
}

#: handler parameter types: a parameter's name is its key in ``DEPENDENCIES``. Ports
#: are Protocols, which Litestar's signature model cannot check: their values are
#: passed as they are (``SkipValidation``), typed for mypy only
PrincipalDep = NamedDependency[Principal]
SettingsDep = NamedDependency[SkipValidation[Settings]]
UowFactoryDep = NamedDependency[SkipValidation[UnitOfWorkFactory]]
ClockDep = NamedDependency[SkipValidation[Clock]]
QueueDep = NamedDependency[SkipValidation[JobQueue]]
StorageDep = NamedDependency[SkipValidation[MediaStorage]]
InspectorDep = NamedDependency[SkipValidation[ImageInspector]]
CatalogDep = NamedDependency[SkipValidation[Catalog]]
ProductsDep = NamedDependency[SkipValidation[ProductCatalog]]
AppleStoreDep = NamedDependency[SkipValidation[AppleStore | None]]
GoogleStoreDep = NamedDependency[SkipValidation[GoogleStore | None]]
AuthVerifierDep = NamedDependency[SkipValidation[AuthVerifier]]
EnhancerDep = NamedDependency[SkipValidation[PromptEnhancer]]
CaptionerDep = NamedDependency[SkipValidation[Captioner | None]]
GpusDep = NamedDependency[SkipValidation[Mapping[str, GpuProvider]]]
RouterDep = NamedDependency[SkipValidation[ProviderRouter]]
QueueInspectorDep = NamedDependency[SkipValidation[QueueInspector | None]]
EngineDep = NamedDependency[SkipValidation[AsyncEngine]]
RedisDep = NamedDependency[SkipValidation[Redis | None]]
RealtimeHubDep = NamedDependency[SkipValidation[RealtimeHub]]
PhotoSetsDep = NamedDependency[SkipValidation[PhotoSets]]
NotificationSettingsDep = NamedDependency[SkipValidation[NotificationSettings]]
NotificationTextsDep = NamedDependency[SkipValidation[NotificationTexts]]
PushKickDep = NamedDependency[SkipValidation[Kick]]
AnalyticsDep = NamedDependency[SkipValidation[Tracker | None]]
TrainingDep = NamedDependency[SkipValidation[Training]]
PostsDep = NamedDependency[SkipValidation[Posts]]
ProfilesDep = NamedDependency[SkipValidation[Profiles]]
GenerationDep = NamedDependency[SkipValidation[Generation]]
ReportsDep = NamedDependency[SkipValidation[Reports]]
ModerationDep = NamedDependency[SkipValidation[Moderation]]
AccountDeletionDep = NamedDependency[SkipValidation[AccountDeletion]]
