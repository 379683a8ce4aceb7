"""Media in Supabase Storage: one private bucket, objects under ``<user_id>/``, signed URLs.

``SupabaseStorage(url=SUPABASE_URL, service_key=SUPABASE_SERVICE_KEY, bucket=...)``
implements ``ports.storage.MediaStorage`` over the Storage REST API; call
``ensure_bucket()`` once at start to create the bucket (private) if it is missing.
"""

from genstudio.adapters.supabase_storage.storage import (
    PublicBucketError,
    SupabaseStorage,
    check_key,
)

__all__ = ["PublicBucketError", "SupabaseStorage", "check_key"]
