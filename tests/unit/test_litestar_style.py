"""The handlers are written the way Litestar 3.0 still takes them: every path and query
parameter says where it comes from (``FromPath``, ``FromQuery``, ``QueryParameter``)
and every body its marker (``JSONBody``). Litestar 2.25 warns about each handler
written the older ways (a parameter inferred from the path or the signature,
``Parameter(query=...)``, a bare ``data``); these tests fail listing every such
warning, so the next handler written the old way fails the suite instead of adding a
warning CI scrolls past.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable

from litestar.exceptions import LitestarDeprecationWarning

from genstudio.core.model.moderation import Classification, Surface
from genstudio.entrypoints.classifier import create_classifier_app
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.settings import DatabaseSettings, Settings, SupabaseSettings

#: built, never started: no database is opened
SETTINGS = Settings(
    database=DatabaseSettings(url="postgresql://unused/x"),
    supabase=SupabaseSettings(jwt_secret="s" * 40),
)

#: a fresh interpreter imports the app's modules and builds the app and its document,
#: so a deprecated style met at import time counts too (a module-level
#: ``Parameter(query=...)`` warns when the module is imported, once a process)
FRESH = """
import json, warnings
from litestar.exceptions import LitestarDeprecationWarning
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("ignore")
    warnings.filterwarnings("always", category=DeprecationWarning, module=r"litestar(\\.|$)")
    warnings.filterwarnings("always", category=LitestarDeprecationWarning)
    from genstudio.entrypoints.http.app import create_app
    from genstudio.entrypoints.settings import DatabaseSettings, Settings, SupabaseSettings
    app = create_app(Settings(
        database=DatabaseSettings(url="postgresql://unused/x"),
        supabase=SupabaseSettings(jwt_secret="s" * 40),
    ))
    app.openapi_schema.to_schema()
print(json.dumps(sorted({f"{w.category.__name__}: {w.message}" for w in seen})))
"""


class _Classifier:
    """Never asked: the service is built, not started."""

    name = "standin"

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        return Classification()

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        return Classification()


def _litestar_deprecations(build: Callable[[], object]) -> list[str]:
    """What Litestar deprecates while ``build`` runs: its own warning category, and
    any DeprecationWarning issued from its modules (``Parameter(query=...)`` is one)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("ignore")
        warnings.filterwarnings("always", category=DeprecationWarning, module=r"litestar(\.|$)")
        warnings.filterwarnings("always", category=LitestarDeprecationWarning)
        build()
    return sorted({f"{w.category.__name__}: {w.message}" for w in seen})


def test_building_the_app_and_its_document_deprecates_nothing() -> None:
    def build() -> None:
        create_app(SETTINGS).openapi_schema.to_schema()

    assert _litestar_deprecations(build) == []


def test_building_the_classifier_service_deprecates_nothing() -> None:
    assert _litestar_deprecations(lambda: create_classifier_app(_Classifier())) == []


def test_a_fresh_process_importing_and_building_the_app_is_warned_of_nothing() -> None:
    out = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout) == []
