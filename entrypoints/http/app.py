"""The Litestar application: routes, error mapping, OpenAPI, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from genstudio.entrypoints.http import access
from genstudio.entrypoints.http.account.controller import AccountController
from genstudio.entrypoints.http.admin.controller import AdminController
from genstudio.entrypoints.http.admin.stats import StatsController
from genstudio.entrypoints.http.catalog.controller import list_models
from genstudio.entrypoints.http.deadline import Deadline
from genstudio.entrypoints.http.deps import DEPENDENCIES
from genstudio.entrypoints.http.docs import swagger_assets, swagger_plugin
from genstudio.entrypoints.http.generation.controller import GenerateController
from genstudio.entrypoints.http.generation.webhooks import runpod_webhook
from genstudio.entrypoints.http.health.controller import live, ready
from genstudio.entrypoints.http.limits import RateLimits
from genstudio.entrypoints.http.media.controller import media
from genstudio.entrypoints.http.metrics import instrument, metrics
from genstudio.entrypoints.http.notifications.controller import NotificationsController
from genstudio.entrypoints.http.openapi import declare, operation_id
from genstudio.entrypoints.http.problems import EXCEPTION_HANDLERS
from genstudio.entrypoints.http.purchases.controller import PurchasesController
from genstudio.entrypoints.http.purchases.webhooks import apple_webhook, google_webhook
from genstudio.entrypoints.http.query import UnknownQuery, record
from genstudio.entrypoints.http.realtime.controller import realtime
from genstudio.entrypoints.http.routing import App
from genstudio.entrypoints.http.safety.controller import ModerationController, SafetyController
from genstudio.entrypoints.http.social.controller import MeSocialController, SocialController
from genstudio.entrypoints.http.social.pages import PAGES as SOCIAL_PAGES
from genstudio.entrypoints.http.training.controller import TrainingPhotosController
from genstudio.entrypoints.http.training.jobs_controller import TrainingController, my_models
from genstudio.entrypoints.runtime import Runtime, open_runtime
from genstudio.entrypoints.settings import Settings

#: the parts a multipart form may have (Litestar's default: 1000)
MAX_FORM_PARTS = 64

RuntimeOpener = Callable[[Settings], AbstractAsyncContextManager[Runtime]]


def create_app(settings: Settings, *, runtime_opener: RuntimeOpener | None = None) -> Litestar:
    """Build the app. ``runtime_opener`` lets tests run it over other adapters."""
    opener: RuntimeOpener = runtime_opener or (lambda s: open_runtime(s))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with opener(settings) as runtime:
            app.state.runtime = runtime
            app.state.container = runtime.container  # what the typed dependencies read
            yield

    app = App(  # one OPTIONS answer per path, whichever controllers share it
        route_handlers=[
            AccountController,
            AdminController,
            StatsController,
            GenerateController,
            list_models,
            live,
            ready,
            metrics,
            media,
            PurchasesController,
            realtime,
            TrainingPhotosController,
            NotificationsController,
            TrainingController,
            my_models,
            apple_webhook,
            google_webhook,
            runpod_webhook,
            MeSocialController,
            SocialController,
            SafetyController,
            ModerationController,
            *SOCIAL_PAGES,
            swagger_assets(),
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        # a stalled database or cache: 503 + Retry-After instead of a hung request;
        # then the rate limits: after routing, before any body is read (entrypoints/http/limits.py);
        # then a query parameter the route does not take is refused (query.py)
        middleware=[
            DefineMiddleware(Deadline, seconds=settings.server.request_deadline),
            RateLimits,
            UnknownQuery,
        ],
        # our forms have at most 8 parts; a form of more is refused (413) as it streams
        multipart_form_part_limit=MAX_FORM_PARTS,
        lifespan=[lifespan],
        logging_config=None,  # genstudio.entrypoints.logs configures logging: one JSON object a line
        openapi_config=OpenAPIConfig(
            title="genstudio",
            version="1.0.0",
            description="Credits, generation jobs and media for the genstudio mobile app. "
            "Errors are RFC 9457 problem+json.",
            path="/schema",
            render_plugins=[swagger_plugin()],  # its files served by the app: no CDN
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
            security=[{"bearer": []}],  # the default; public routes say security: []
            operation_id_creator=operation_id,  # stable camelCase names (generateImage)
        ),
    )
    declare(app)  # problem responses, byte bodies, forms, public routes (openapi.py)
    record(app, app.openapi_schema)  # each route takes the query parameters it documents
    instrument(app, settings)  # request metrics; errors to Sentry with SENTRY_DSN (issue #20)
    # an access line and an X-Request-Id for every request, the deadline's 503 included
    return access.install(app)
