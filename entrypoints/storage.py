"""Which media storage a deployment has (issue #23)."""

from __future__ import annotations

from genstudio.entrypoints.plugins import load_media_storage
from genstudio.entrypoints.settings import Settings
from genstudio.ports.storage import MediaStorage


def storage_name(settings: Settings) -> str:
    """MEDIA_STORAGE when set; else, as always, Supabase Storage when SUPABASE_URL and
    SUPABASE_SERVICE_KEY are set, and local files otherwise."""
    if settings.adapters.media_storage:
        return settings.adapters.media_storage
    return "supabase" if settings.supabase.storage else "local"


def build_storage(settings: Settings) -> MediaStorage:
    """The storage built by the factory its name is registered under
    (entrypoints/plugins.py), handed its ``<NAME>_*`` variables."""
    name = storage_name(settings)
    return load_media_storage(name)(settings, settings.adapters.env_of(name))
