"""genstudio's HTTP API on the in-memory adapters: ``MemoryHttpApp``.

The real Litestar app (every route, the error mapping to problem+json, auth, rate
limits), its container's ports swapped for a ``MemoryApplication``'s: its store,
queue, clock, scripted GPU, storage and catalog. So what a test puts in through
``app.users`` (or ``app.uow_factory``) is what the API reads, and a job the API queued
runs when the test says, through the container's own worker::

    async with MemoryHttpApp(MemoryApplication()) as api:
        user = await api.app.users.with_credits(10)
        answer = await api.client.post(
            "/v1/generate/image",
            json={"model": "flux-schnell", "prompt": "a fox"},
            headers=api.headers(user) | {"Idempotency-Key": "k1"},
        )
        await api.run_jobs()

Requests go through an ``httpx.AsyncClient`` on the test's own event loop (ASGI, no
socket, no thread); nothing runs in the background. ``token``/``headers`` mint
bearer tokens as Supabase Auth signs them, with the app's test secret.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Self, cast

import httpx
import msgspec
from dependency_injector import providers
from litestar import Litestar

from genstudio.adapters.supabase.auth import mint_token
from genstudio.core.model.jobs import Job
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from genstudio.entrypoints.settings.moderation import ModerationSettings
from genstudio.testing.application import MemoryApplication
from genstudio.testing.stores import AppleKit, GoogleKit

#: the secret the app checks tokens with, and ``token`` signs them with
JWT_SECRET = "genstudio-testing-kit-" + "s" * 32
#: the app's engine is made but never connected: every unit of work is in memory
UNUSED_DATABASE = "postgresql://genstudio@127.0.0.1:9/in-memory"
BASE_URL = "http://genstudio.test"


class MemoryHttpApp:
    """The Litestar app over a ``MemoryApplication``; an async context manager.

    ``apple`` / ``google``: store stand-ins (``genstudio.testing.stores``) the app's
    ``APPLE_*`` / ``GOOGLE_*`` settings point at, so ``POST /v1/purchases/*`` and the
    store webhooks verify what they sign. ``settings``: a function that changes the
    ``Settings`` the app is built with (the database, secrets and in-memory ports are
    the kit's). ``configure``: a last word on the dependency-injector container
    (``container.<provider>.override(...)``).
    """

    def __init__(
        self,
        app: MemoryApplication,
        *,
        apple: AppleKit | None = None,
        google: GoogleKit | None = None,
        settings: Callable[[Settings], Settings] | None = None,
        configure: Callable[[AppContainer], None] | None = None,
    ) -> None:
        self.app = app
        self._apple, self._google = apple, google
        self._change_settings = settings
        self._configure = configure
        self._stack = AsyncExitStack()
        self.litestar: Litestar | None = None
        self._client: httpx.AsyncClient | None = None

    # -- the app ------------------------------------------------------------------------

    def build_settings(self, data_dir: Path) -> Settings:
        settings = Settings(
            database=DatabaseSettings(url=UNUSED_DATABASE),
            supabase=SupabaseSettings(jwt_secret=JWT_SECRET),
            server=ServerSettings(
                data_dir=data_dir, media_secret="genstudio-testing-media", public_url=BASE_URL
            ),
            # the rule list checks texts; no image model is loaded for a test
            moderation=ModerationSettings(images="off"),
        )
        if self._apple is not None:
            settings = msgspec.structs.replace(settings, apple=self._apple.settings)
        if self._google is not None:
            settings = msgspec.structs.replace(settings, google=self._google.settings)
        if self._change_settings is not None:
            settings = self._change_settings(settings)
        return settings

    def _wire(self, container: AppContainer) -> None:
        app = self.app
        container.uow_factory.override(providers.Object(app.uow_factory))
        container.queue.override(providers.Object(app.queue))
        container.clock.override(providers.Object(app.clock))
        container.gpu.override(providers.Object(app.gpu))
        container.storage.override(providers.Object(app.storage))
        container.catalog.override(providers.Object(app.catalog))
        container.iap.products.override(providers.Object(app.products))
        if self._configure is not None:
            self._configure(container)

    async def __aenter__(self) -> Self:
        try:
            data_dir = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
            settings = self.build_settings(data_dir)
            litestar = create_app(
                settings,
                runtime_opener=lambda s: open_runtime(
                    s, in_process_worker=False, configure=self._wire
                ),
            )
            await self._start(litestar)
            self.litestar = litestar
            self._client = await self._stack.enter_async_context(
                httpx.AsyncClient(
                    # Litestar's scope types are narrower than httpx's ASGI callable's
                    transport=httpx.ASGITransport(app=cast(Any, litestar)),
                    base_url=BASE_URL,
                )
            )
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _start(self, litestar: Litestar) -> None:
        """Run the app's lifespan in a task of its own, entered and left in that task
        (its task groups' cancel scopes must be: a fixture's set-up and tear-down may
        run in different tasks), and left when the block ends."""
        started, stop = asyncio.Event(), asyncio.Event()

        async def lifespan() -> None:
            async with litestar.lifespan():
                started.set()
                await stop.wait()

        task = asyncio.create_task(lifespan(), name="genstudio-testing-lifespan")
        ready = asyncio.create_task(started.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            ready.cancel()
            await task  # its start failed: raises why
            raise RuntimeError("the app's lifespan ended at start")

        async def stopped() -> None:
            stop.set()
            await task

        self._stack.push_async_callback(stopped)

    async def __aexit__(self, *exc: object) -> None:
        self._client = self.litestar = None
        await self._stack.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        """An HTTP client of the app (paths from ``/``, e.g. ``/v1/me``)."""
        if self._client is None:
            raise RuntimeError("MemoryHttpApp is used inside `async with`")
        return self._client

    @property
    def container(self) -> AppContainer:
        """The app's dependency-injector container (its ports are the kit's)."""
        if self.litestar is None:
            raise RuntimeError("MemoryHttpApp is used inside `async with`")
        container: AppContainer = self.litestar.state.container
        return container

    # -- tokens -------------------------------------------------------------------------

    def token(
        self,
        user_id: uuid.UUID,
        *,
        role: str = "authenticated",
        email: str | None = None,
        ttl_seconds: int = 3600,
    ) -> str:
        """A bearer token for ``user_id`` as Supabase Auth signs one (HS256, audience
        ``authenticated``); ``role="service_role"`` for the operator routes."""
        return mint_token(
            JWT_SECRET, user_id=user_id, role=role, email=email, ttl_seconds=ttl_seconds
        )

    def headers(self, user_id: uuid.UUID, *, role: str = "authenticated") -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` for ``user_id``."""
        return {"Authorization": f"Bearer {self.token(user_id, role=role)}"}

    # -- the worker ---------------------------------------------------------------------

    @property
    def processor(self) -> JobProcessor:
        """The container's worker (routing, moderation of outputs, notifications and
        realtime as the deployed one), over the kit's ports."""
        processor: JobProcessor = self.container.processor()
        return processor

    async def run_jobs(self, *, max_rounds: int = 100) -> list[Job]:
        """What ``MemoryApplication.run_jobs`` does, by the app's own worker: every
        job the API queued runs to its end, the clock moved over retries."""
        return await self.app.run_jobs(max_rounds=max_rounds, processor=self.processor)

    async def run_due(self) -> list[Job]:
        """One pass of the app's worker over what is due now (the clock left alone)."""
        return await self.app.run_due(processor=self.processor)
