"""MediaStorage over the Supabase Storage REST API (``{SUPABASE_URL}/storage/v1``).

Requests, all with ``Authorization: Bearer <service key>`` and ``apikey: <service key>``:

- upload: ``POST /object/{bucket}/{key}``, the bytes as the body, ``x-upsert: true``
- download: ``GET /object/authenticated/{bucket}/{key}``
- sign: ``POST /object/sign/{bucket}/{key}`` ``{"expiresIn": s}`` ->
  ``{"signedURL": "/object/sign/{bucket}/{key}?token=..."}`` (relative to ``/storage/v1``)
- delete: ``DELETE /object/{bucket}`` ``{"prefixes": [key]}`` (a missing key is not an error)
- buckets: ``GET /bucket/{id}``, ``POST /bucket`` ``{"id", "name", "public": false}``

Storage answers most errors with HTTP 400 and the real status as a string in the body
(``{"statusCode": "404", "error": "not_found", "message": "Object not found"}``); newer
versions send the real status. Both are read the same way here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import urllib.parse
from typing import Any

import httpx

from genstudio.core.model.media import check_storage_key
from genstudio.ports.storage import ObjectNotFound, StorageUnavailable

log = logging.getLogger("genstudio.storage")


class PublicBucketError(Exception):
    """The bucket exists and is public: its objects would be readable without a signed URL."""


check_key = check_storage_key  # one set of key rules for every storage adapter


class SupabaseStorage:
    """``MediaStorage`` on one Supabase Storage bucket, private, with the service key.

    The first upload creates the bucket, private, if it is missing (``auto_create_bucket``);
    ``ensure_bucket()`` does it up front, and refuses a public bucket.

    Rate limits (429) are retried ``max_retries`` times, waiting ``Retry-After`` (at most
    ``max_backoff`` seconds) or an exponential backoff with jitter; server errors,
    timeouts, unreachable hosts and refused credentials raise StorageUnavailable at once
    (the job that asked retries as a whole).
    """

    def __init__(
        self,
        *,
        url: str,
        service_key: str,
        bucket: str = "media",
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        auto_create_bucket: bool = True,
    ) -> None:
        if not url or not service_key or not bucket:
            raise ValueError("SupabaseStorage needs a URL, a service key and a bucket")
        if "/" in bucket:
            raise ValueError(f"bucket {bucket!r} may not contain '/'")
        self.url = url.rstrip("/")
        self.api = f"{self.url}/storage/v1"
        self.bucket = bucket
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.auto_create_bucket = auto_create_bucket
        self._headers = {"Authorization": f"Bearer {service_key}", "apikey": service_key}
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()

    # -- the port -----------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._object_path(key)
        response = await self._upload(path, data, content_type)
        if self.auto_create_bucket and _is_missing_bucket(response):
            await self.ensure_bucket()
            response = await self._upload(path, data, content_type)
        self._raise_for(response, "upload", key)

    async def get(self, key: str) -> bytes:
        response = await self._send("GET", f"/object/authenticated/{self._object_path(key)}")
        self._raise_for(response, "download", key)
        return response.content

    async def signed_url(self, key: str, expires_in: int) -> str:
        if expires_in < 1:
            raise ValueError("a signed URL must live at least one second")
        response = await self._send(
            "POST", f"/object/sign/{self._object_path(key)}", json={"expiresIn": int(expires_in)}
        )
        self._raise_for(response, "sign", key)
        body = _json(response)
        signed = body.get("signedURL") or body.get("signedUrl")
        if not isinstance(signed, str) or not signed:
            raise StorageUnavailable(f"Supabase Storage signed {key!r} without a signedURL")
        return self._absolute(signed)

    async def delete(self, key: str) -> None:
        check_key(key)
        response = await self._send("DELETE", f"/object/{self.bucket}", json={"prefixes": [key]})
        with contextlib.suppress(ObjectNotFound):  # deleting a missing object is fine
            self._raise_for(response, "delete", key)

    # -- setup and lifecycle -----------------------------------------------------------

    async def ensure_bucket(self) -> None:
        """Create the bucket, private, unless it exists. Raises PublicBucketError if it
        exists and is public, StorageUnavailable if Storage fails."""
        for _ in range(2):
            response = await self._send("GET", f"/bucket/{self.bucket}")
            if _status_of(response) != 404:
                self._raise_for(response, "read bucket", self.bucket)
                if _json(response).get("public") is not False:
                    raise PublicBucketError(
                        f"bucket {self.bucket!r} is public; media must stay private"
                    )
                return
            response = await self._send(
                "POST",
                "/bucket",
                json={"id": self.bucket, "name": self.bucket, "public": False},
            )
            if _status_of(response) == 409:
                continue  # created meanwhile by another process: check what it made
            self._raise_for(response, "create bucket", self.bucket)
            log.info("storage bucket created", extra={"bucket": self.bucket})
            return
        raise StorageUnavailable(f"bucket {self.bucket!r} is neither readable nor creatable")

    async def aclose(self) -> None:
        """Close the HTTP client, if this storage made it."""
        if self._owns_client:
            await self._client.aclose()

    # -- HTTP ---------------------------------------------------------------------------

    async def _upload(self, path: str, data: bytes, content_type: str) -> httpx.Response:
        return await self._send(
            "POST",
            f"/object/{path}",
            content=bytes(data),
            headers={
                "Content-Type": content_type or "application/octet-stream",
                "x-upsert": "true",
            },
        )

    def _object_path(self, key: str) -> str:
        check_key(key)
        return f"{self.bucket}/{urllib.parse.quote(key, safe='/')}"

    def _absolute(self, signed: str) -> str:
        if signed.startswith(("https://", "http://")):
            return signed
        if signed.startswith("/storage/v1/"):
            return self.url + signed
        return f"{self.api}/{signed.lstrip('/')}"

    async def _send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._client.request(
                    method,
                    self.api + path,
                    headers={**self._headers, **(headers or {})},
                    timeout=self.timeout,
                    **kwargs,
                )
            except httpx.TimeoutException as exc:
                raise StorageUnavailable(
                    f"Supabase Storage did not answer {method} {path} within {self.timeout}s"
                ) from exc
            except httpx.TransportError as exc:
                raise StorageUnavailable(f"Supabase Storage is unreachable: {exc!r}") from exc
            if _status_of(response) != 429 or attempt == self.max_retries:
                return response
            delay = self._delay(response, attempt)
            log.warning(
                "storage rate limited; retrying",
                extra={"path": path, "attempt": attempt + 1, "delay": delay},
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, response: httpx.Response, attempt: int) -> float:
        try:
            retry_after = float(response.headers.get("Retry-After", ""))
        except ValueError:
            retry_after = self.backoff * 2**attempt * (1 + random.random() / 2)
        return max(0.0, min(retry_after, self.max_backoff))

    def _raise_for(self, response: httpx.Response, what: str, key: str) -> None:
        status = _status_of(response)
        if 200 <= status < 300:
            return
        detail = _message(response)
        if status == 404 and not _is_missing_bucket(response):
            raise ObjectNotFound(key)
        if status == 429:
            reason = f"rate limited past {self.max_retries} retries"
        elif status in (401, 403):
            reason = "refused the service key"
        elif status >= 500:
            reason = "failed"
        else:
            reason = "refused the request"
        raise StorageUnavailable(
            f"Supabase Storage {reason} ({status}) on {what} of {key!r}: {detail}"
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _status_of(response: httpx.Response) -> int:
    """The real status: Storage's 400s carry it as a string in the body."""
    if response.status_code == 400:
        code = _json(response).get("statusCode")
        try:
            return int(code) if code is not None else 400
        except (TypeError, ValueError):
            return 400
    return response.status_code


def _is_missing_bucket(response: httpx.Response) -> bool:
    return _status_of(response) == 404 and "bucket" in _message(response).lower()


def _message(response: httpx.Response) -> str:
    body = _json(response)
    parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
    return ": ".join(parts) or response.text[:200] or response.reason_phrase
