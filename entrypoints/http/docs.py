"""The API docs page (``/schema/swagger``, also ``/schema``) with nothing from a CDN.

Litestar's Swagger UI page loads its script, stylesheet and favicon from
jsdelivr by default: blank offline, and the embedded default is meant to work with no
network. The ``swagger-ui-bundle-v2`` wheel ships Swagger UI's dist files (5.x, which
renders the OpenAPI 3.1 document Litestar writes); they are served by the app under
``/schema/assets/`` and the page points there.
"""

from __future__ import annotations

from pathlib import Path

from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

ASSETS = "/schema/assets"


def swagger_plugin() -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        js_url=f"{ASSETS}/swagger-ui-bundle.js",
        css_url=f"{ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
    )


def swagger_assets() -> Router:
    """Swagger UI's files, from the installed package."""
    return create_static_files_router(
        path=ASSETS,
        directories=[Path(str(swagger_ui_path))],
        include_in_schema=False,
        cache_control=None,
        name="swagger-assets",
    )
