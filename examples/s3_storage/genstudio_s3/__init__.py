"""genstudio media storage on S3-compatible services: ``MEDIA_STORAGE=s3``.

``S3Storage`` implements ``genstudio.ports.storage.MediaStorage``; ``from_settings`` is
the factory genstudio finds through the entry point ``genstudio.media_storage: s3``.
"""

from genstudio_s3.config import from_settings
from genstudio_s3.storage import MAX_EXPIRES_IN, S3Storage

__all__ = ["MAX_EXPIRES_IN", "S3Storage", "from_settings"]
