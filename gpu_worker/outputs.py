"""How finished files travel back (docs/providers.md §1): inline as base64, or stored
in a bucket and answered as a pre-signed URL genstudio GETs without credentials.

A file up to the controls' ``inline_max_bytes`` travels inline; a larger one goes to
the store (every file inline when no store is configured: Runpod caps a job's output
size, so configure one for videos and LoRA weights in production).
"""

from __future__ import annotations

import base64
import importlib
import uuid
from pathlib import Path
from typing import Any, Protocol


class Store(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``key``; the URL that GETs it without credentials for at
        least an hour."""
        ...


class DirectoryStore:
    """Files in a folder that a web server publishes at ``base_url`` (local serving,
    tests, a volume behind a CDN)."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")

    def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.base_url}/{key}"


class S3Store:
    """An S3-compatible bucket (AWS S3, Cloudflare R2, MinIO, Supabase Storage's S3
    API): each file put, then answered as a pre-signed GET URL valid ``expires`` s."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        expires: int = 7200,
        client: Any = None,
    ) -> None:
        if client is None:
            # the s3 extra, imported only when a bucket is configured
            boto3 = importlib.import_module("boto3")
            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.expires = expires

    def put(self, key: str, data: bytes, content_type: str) -> str:
        name = f"{self.prefix}/{key}" if self.prefix else key
        self.client.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType=content_type)
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": name}, ExpiresIn=self.expires
        )
        return url


class Outputs:
    """One job's files, each answered as ``{"base64"|"url", "content_type"}``."""

    def __init__(self, store: Store | None, *, inline_max_bytes: int, job_id: str) -> None:
        self.store = store
        self.inline_max_bytes = inline_max_bytes
        # one folder per attempt: a retried job never overwrites what an earlier one answered
        self.folder = f"{_safe(job_id) or 'job'}/{uuid.uuid4().hex}"
        self.count = 0

    def file(self, data: bytes, content_type: str, suffix: str) -> dict[str, str]:
        self.count += 1
        if self.store is None or len(data) <= self.inline_max_bytes:
            return {"base64": base64.b64encode(data).decode("ascii"), "content_type": content_type}
        key = f"{self.folder}/{self.count - 1}{suffix}"
        return {"url": self.store.put(key, data, content_type), "content_type": content_type}


def _safe(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "-_")[:64]
