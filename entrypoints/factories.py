"""genstudio's own adapters as entry-point factories (issue #23, entrypoints/plugins.py).

pyproject.toml registers each under its group (``genstudio.gpu_providers``: local,
modal, runpod; ``genstudio.media_storage``: local, supabase), the way an outside
package registers its own. They read their settings groups (``MODAL_*``,
``RUNPOD_*``, ``SUPABASE_*``...), not the ``env`` mapping, and import their adapter
only when called: a worker on Modal never imports the CPU renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

from genstudio.entrypoints.settings import Settings

if TYPE_CHECKING:
    from genstudio.adapters.gpu_local import LocalGpuProvider
    from genstudio.adapters.gpu_modal import ModalProvider
    from genstudio.adapters.gpu_runpod import RunpodProvider
    from genstudio.adapters.local_storage import LocalFileStorage
    from genstudio.adapters.supabase_storage import SupabaseStorage


def modal_configured(settings: Settings) -> bool:
    modal = settings.modal
    return bool(modal.base_url and modal.token_id and modal.token_secret)


def runpod_configured(settings: Settings) -> bool:
    return bool(settings.runpod.api_key and settings.runpod.endpoints)


def local_gpu(settings: Settings, env: Mapping[str, str] | None = None) -> LocalGpuProvider:
    """The CPU preview renderer (the embedded default's GPU): real PNGs and MP4s."""
    from genstudio.adapters.gpu_local import LocalGpuProvider

    return LocalGpuProvider(min_seconds=settings.jobs.local_gpu_seconds)


def modal_gpu(settings: Settings, env: Mapping[str, str] | None = None) -> ModalProvider:
    """Our Modal app's web endpoints (MODAL_BASE_URL, MODAL_TOKEN_ID, MODAL_TOKEN_SECRET)."""
    modal = settings.modal
    if not (modal.base_url and modal.token_id and modal.token_secret):
        _missing(
            "GPU_PROVIDERS names modal",
            MODAL_BASE_URL=modal.base_url,
            MODAL_TOKEN_ID=modal.token_id,
            MODAL_TOKEN_SECRET=modal.token_secret,
        )
    from genstudio.adapters.gpu_modal import ModalProvider

    return ModalProvider(
        base_url=modal.base_url,
        token_id=modal.token_id,
        token_secret=modal.token_secret,
        timeout=settings.jobs.gpu_timeout,
    )


def runpod_gpu(settings: Settings, env: Mapping[str, str] | None = None) -> RunpodProvider:
    """Runpod serverless (RUNPOD_API_KEY, RUNPOD_ENDPOINTS; RUNPOD_WEBHOOK_SECRET)."""
    runpod = settings.runpod
    if not (runpod.api_key and runpod.endpoints):
        _missing(
            "GPU_PROVIDERS names runpod",
            RUNPOD_API_KEY=runpod.api_key,
            RUNPOD_ENDPOINTS=",".join(runpod.endpoints) or None,
        )
    from genstudio.adapters.gpu_runpod import make_runpod_provider
    from genstudio.core.model.pricing import DEFAULT_CATALOG

    return make_runpod_provider(
        api_key=runpod.api_key,
        endpoints=runpod.endpoints,  # catalog ids become provider model names
        catalog=DEFAULT_CATALOG,
        base_url=runpod.base_url,
        public_url=settings.server.base_url,
        webhook_secret=runpod.webhook_secret,
        rate_limit=runpod.rate_limit,
        timeout=settings.jobs.gpu_timeout,
        execution_timeout_ms=int(settings.jobs.job_timeout * 1000),
    )


def local_storage(settings: Settings, env: Mapping[str, str] | None = None) -> LocalFileStorage:
    """Files under GENSTUDIO_DATA_DIR/media, their signed URLs served by the app's /media
    route (signed with GENSTUDIO_MEDIA_SECRET or the kept one)."""
    from genstudio.adapters.local_storage import LocalFileStorage

    server = settings.server
    return LocalFileStorage(
        server.data_dir / "media",
        base_url=server.base_url,
        secret=(server.media_secret or "").encode(),
    )


def supabase_storage(settings: Settings, env: Mapping[str, str] | None = None) -> SupabaseStorage:
    """Supabase Storage (SUPABASE_URL, SUPABASE_SERVICE_KEY, SUPABASE_STORAGE_BUCKET)."""
    supabase = settings.supabase
    if not (supabase.url and supabase.service_key):
        _missing(
            "MEDIA_STORAGE names supabase",
            SUPABASE_URL=supabase.url,
            SUPABASE_SERVICE_KEY=supabase.service_key,
        )
    from genstudio.adapters.supabase_storage import SupabaseStorage

    return SupabaseStorage(
        url=supabase.url, service_key=supabase.service_key, bucket=supabase.storage_bucket
    )


def _missing(why: str, **values: str | None) -> NoReturn:
    unset = [name for name, value in values.items() if not value]
    raise SystemExit(f"{why}, which needs {' and '.join(values)}: {', '.join(unset)} unset")
