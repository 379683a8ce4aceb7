"""HTTP server settings: ``HOST``, ``PORT``, the data directory, the public URL, signed
media URLs, the request deadline and logging (``GENSTUDIO_LOG_*``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import msgspec

from genstudio.entrypoints.settings.env import Env


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True):
    PREFIXES: ClassVar[tuple[str, ...]] = (
        "HOST",
        "PORT",
        "GENSTUDIO_DATA_DIR",
        "GENSTUDIO_PUBLIC_URL",
        "GENSTUDIO_MEDIA_SECRET",
        "GENSTUDIO_SIGNED_URL_TTL",
        "GENSTUDIO_REQUEST_DEADLINE",
        "GENSTUDIO_LOG_",
    )

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".genstudio")
    public_url: str | None = None
    media_secret: str | None = None
    signed_url_ttl: int = 3600
    request_deadline: float = 20.0  # seconds a request may take to start its answer; then 503
    log_level: str = "INFO"
    log_format: str = "auto"  # json | text | auto: text on a terminal, JSON otherwise

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerSettings:
        e = Env(env)
        return cls(
            host=e.text("HOST", "127.0.0.1"),
            port=e.integer("PORT", 8000),
            data_dir=Path(e.text("GENSTUDIO_DATA_DIR", ".genstudio")),
            public_url=e.opt("GENSTUDIO_PUBLIC_URL"),
            media_secret=e.opt("GENSTUDIO_MEDIA_SECRET"),
            signed_url_ttl=e.integer("GENSTUDIO_SIGNED_URL_TTL", 3600),
            request_deadline=e.number("GENSTUDIO_REQUEST_DEADLINE", 20.0),
            log_level=e.text("GENSTUDIO_LOG_LEVEL", "INFO").upper(),
            log_format=log_format(e.opt("GENSTUDIO_LOG_FORMAT")),
        )


def log_format(raw: str | None) -> str:
    """GENSTUDIO_LOG_FORMAT: ``json``, ``text`` or ``auto`` (text on a terminal, else JSON)."""
    value = (raw or "auto").lower()
    if value not in ("json", "text", "auto"):
        raise SystemExit(f"GENSTUDIO_LOG_FORMAT must be json, text or auto, not {raw!r}")
    return value
