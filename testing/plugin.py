"""genstudio's pytest plugin (the ``pytest11`` entry point ``genstudio``).

Fixtures, each named ``genstudio_*`` so they clash with no project's own:

- ``genstudio_clock``: a ``FakeClock`` (2026-01-01 UTC; moves only when told to);
- ``genstudio_gpu``: a ``ScriptedGpu`` (``succeeds``, ``fails``, ``hangs``, ``down``);
- ``genstudio_catalog`` / ``genstudio_products``: the models and the store products
  (genstudio's defaults: override either fixture to add your own);
- ``genstudio_app``: a ``MemoryApplication`` over the four above;
- ``genstudio_users``: builders of users with credits or a subscription;
- ``genstudio_apple`` / ``genstudio_google``: the store stand-ins, running;
- ``genstudio_http``: the Litestar app over ``genstudio_app``, with an HTTP client and
  a token factory (its ``APPLE_*`` / ``GOOGLE_*`` point at the stand-ins when the test
  uses those fixtures too). Async: needs pytest-asyncio (``genstudio[testing]``).

The plugin is loaded by every pytest run where genstudio is installed, so this module
imports nothing of genstudio's until a fixture is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from genstudio.adapters.memory.clock import FakeClock
    from genstudio.core.model.pricing import Catalog
    from genstudio.core.model.purchases.products import ProductCatalog
    from genstudio.testing.application import MemoryApplication, Users
    from genstudio.testing.gpu import ScriptedGpu
    from genstudio.testing.http import MemoryHttpApp
    from genstudio.testing.stores import AppleKit, GoogleKit

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the kit's extra is not installed
    pytest_asyncio = None  # type: ignore[assignment]


@pytest.fixture
def genstudio_clock() -> FakeClock:
    from genstudio.adapters.memory.clock import FakeClock

    return FakeClock()


@pytest.fixture
def genstudio_gpu() -> ScriptedGpu:
    from genstudio.testing.gpu import ScriptedGpu

    return ScriptedGpu()


@pytest.fixture
def genstudio_catalog() -> Catalog:
    from genstudio.core.model.pricing import DEFAULT_CATALOG

    return DEFAULT_CATALOG


@pytest.fixture
def genstudio_products() -> ProductCatalog:
    from genstudio.core.model.purchases.products import DEFAULT_PRODUCTS

    return DEFAULT_PRODUCTS


@pytest.fixture
def genstudio_app(
    genstudio_clock: FakeClock,
    genstudio_gpu: ScriptedGpu,
    genstudio_catalog: Catalog,
    genstudio_products: ProductCatalog,
) -> MemoryApplication:
    from genstudio.testing.application import MemoryApplication

    return MemoryApplication(
        clock=genstudio_clock,
        gpu=genstudio_gpu,
        catalog=genstudio_catalog,
        products=genstudio_products,
    )


@pytest.fixture
def genstudio_users(genstudio_app: MemoryApplication) -> Users:
    return genstudio_app.users


@pytest.fixture
def genstudio_apple() -> Iterator[AppleKit]:
    from genstudio.testing.stores import AppleKit

    with AppleKit() as kit:
        yield kit


@pytest.fixture
def genstudio_google() -> Iterator[GoogleKit]:
    from genstudio.testing.stores import GoogleKit

    with GoogleKit() as kit:
        yield kit


async def _http_app(
    request: pytest.FixtureRequest, genstudio_app: MemoryApplication
) -> AsyncIterator[MemoryHttpApp]:
    from genstudio.testing.http import MemoryHttpApp

    # the stores' stand-ins are wired in only when the test uses them: no server
    # starts for a test that buys nothing
    apple = (
        request.getfixturevalue("genstudio_apple")
        if "genstudio_apple" in request.fixturenames
        else None
    )
    google = (
        request.getfixturevalue("genstudio_google")
        if "genstudio_google" in request.fixturenames
        else None
    )
    async with MemoryHttpApp(genstudio_app, apple=apple, google=google) as api:
        yield api


if pytest_asyncio is not None:
    genstudio_http = pytest_asyncio.fixture(_http_app, name="genstudio_http")
else:  # pragma: no cover

    @pytest.fixture
    def genstudio_http() -> None:
        pytest.fail("genstudio_http needs pytest-asyncio: pip install 'genstudio[testing]'")
