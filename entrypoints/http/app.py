"""The Litestar application: routes, error mapping, OpenAPI, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from entrypoints.http import access
from entrypoints.http.account.controller import AccountController
from entrypoints.http.admin.controller import AdminController
from entrypoints.http.catalog.controller import list_models
from entrypoints.http.deadline import Deadline
from entrypoints.http.deps import DEPENDENCIES
from entrypoints.http.docs import swagger_assets, swagger_plugin
from entrypoints.http.generation.controller import GenerateController
from entrypoints.http.generation.webhooks import runpod_webhook
from entrypoints.http.health.controller import live, ready
from entrypoints.http.limits import RateLimits
from entrypoints.http.media.controller import media
from entrypoints.http.notifications.controller import NotificationsController
from entrypoints.http.openapi import declare, operation_id
from entrypoints.http.problems import EXCEPTION_HANDLERS
from entrypoints.http.purchases.controller import PurchasesController
from entrypoints.http.purchases.webhooks import apple_webhook, google_webhook
from entrypoints.http.realtime.controller import realtime
from entrypoints.http.routing import App
from entrypoints.http.safety.controller import ModerationController, SafetyController
from entrypoints.http.social.controller import MeSocialController, SocialController
from entrypoints.http.social.pages import PAGES as SOCIAL_PAGES
from entrypoints.http.training.controller import TrainingPhotosController
from entrypoints.http.training.jobs_controller import TrainingController, my_models
from entrypoints.runtime import Runtime, open_runtime
from entrypoints.settings import Settings

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
            GenerateController,
            list_models,
            live,
            ready,
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
        # then the rate limits: after routing, before any body is read (entrypoints/http/limits.py)
        middleware=[
            DefineMiddleware(Deadline, seconds=settings.server.request_deadline),
            RateLimits,
        ],
        # our forms have at most 8 parts; a form of more is refused (413) as it streams
        multipart_form_part_limit=MAX_FORM_PARTS,
        lifespan=[lifespan],
        logging_config=None,  # entrypoints.logs configures logging: one JSON object a line
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
    # an access line and an X-Request-Id for every request, the deadline's 503 included
    return access.install(app)
