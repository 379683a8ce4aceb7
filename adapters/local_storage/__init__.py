"""Media storage on the local disk, for the embedded default.

Objects are files under a root directory; the app serves them at
``GET /media/{key}?expires=&sig=`` after ``LocalFileStorage.verify``, reading
``path_for(key)`` with ``content_type_for(key)``.
"""

from genstudio.adapters.local_storage.storage import LocalFileStorage, check_key

__all__ = ["LocalFileStorage", "check_key"]
