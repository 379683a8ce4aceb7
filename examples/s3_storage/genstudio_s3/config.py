"""``MEDIA_STORAGE=s3``: the factory genstudio calls, reading the ``S3_*`` variables.

S3_BUCKET               the bucket (required; create it private beforehand)
S3_ENDPOINT_URL         the service (unset: AWS S3 of S3_REGION)
S3_PUBLIC_ENDPOINT_URL  where clients reach it, if not S3_ENDPOINT_URL
S3_REGION               default us-east-1 (R2: auto)
S3_ACCESS_KEY_ID        with S3_SECRET_ACCESS_KEY; neither: boto3's own chain
S3_SECRET_ACCESS_KEY
S3_SESSION_TOKEN        temporary credentials
S3_ADDRESSING_STYLE     auto, path (MinIO) or virtual; default auto
S3_TIMEOUT              seconds to connect and for each read; default 30
S3_ATTEMPTS             tries a call gets; default 3
"""

from __future__ import annotations

from collections.abc import Mapping

from genstudio.entrypoints.settings import Settings

from genstudio_s3.storage import S3Storage


def from_settings(settings: Settings, env: Mapping[str, str]) -> S3Storage:
    """The storage for genstudio (entry point ``genstudio.media_storage: s3``); a missing
    or malformed variable stops the process, naming it."""

    def opt(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    def number(name: str, default: float) -> float:
        raw = opt(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SystemExit(f"{name} must be a number, not {raw!r}") from None
        if value <= 0:
            raise SystemExit(f"{name} must be positive, not {raw!r}")
        return value

    bucket = opt("S3_BUCKET")
    if bucket is None:
        raise SystemExit("MEDIA_STORAGE=s3 needs S3_BUCKET (the bucket's name)")
    key_id, secret = opt("S3_ACCESS_KEY_ID"), opt("S3_SECRET_ACCESS_KEY")
    if (key_id is None) != (secret is None):
        missing = "S3_SECRET_ACCESS_KEY" if secret is None else "S3_ACCESS_KEY_ID"
        raise SystemExit(
            f"S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together: {missing} is unset"
        )
    style = opt("S3_ADDRESSING_STYLE") or "auto"
    if style not in ("auto", "path", "virtual"):
        raise SystemExit(f"S3_ADDRESSING_STYLE must be auto, path or virtual, not {style!r}")
    return S3Storage(
        bucket=bucket,
        endpoint_url=opt("S3_ENDPOINT_URL"),
        public_endpoint_url=opt("S3_PUBLIC_ENDPOINT_URL"),
        region=opt("S3_REGION") or "us-east-1",
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=opt("S3_SESSION_TOKEN"),
        addressing_style=style,
        timeout=number("S3_TIMEOUT", 30.0),
        attempts=int(number("S3_ATTEMPTS", 3)),
    )
