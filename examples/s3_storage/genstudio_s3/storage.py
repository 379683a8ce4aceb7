"""genstudio's ``MediaStorage`` port over an S3-compatible service.

One private bucket; objects under the keys genstudio gives (``<user_id>/<media_id>.png``);
reads through presigned GET URLs that expire. Also presigned PUT URLs
(``signed_upload_url``), for a client that uploads straight to the bucket.

botocore (boto3's engine) does the talking: its SigV4 signer (headers and presigned
query strings) and its retries are what AWS S3, Cloudflare R2 and MinIO are each tested
against, and signing is the part a hand-written client gets subtly wrong (canonical
query encoding, ``UNSIGNED-PAYLOAD``, region scopes). It blocks, so every call that goes
over the network runs in a thread (its clients are thread-safe); presigning is local
and runs inline.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from genstudio.core.model.media import check_storage_key
from genstudio.ports.storage import ObjectNotFound, StorageUnavailable

log = logging.getLogger("genstudio_s3")

_T = TypeVar("_T")

#: SigV4 presigned URLs live at most 7 days
MAX_EXPIRES_IN = 7 * 24 * 3600
#: the error codes that say the object (not the service) is missing
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
#: the error codes that say our credentials or their rights are wrong
_REFUSED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "ExpiredToken"}
)


class S3Storage:
    """Media in one bucket of an S3-compatible service.

    ``endpoint_url``: the service (None: AWS S3 of ``region``; R2:
    ``https://<account>.r2.cloudflarestorage.com``; MinIO: its address).
    ``public_endpoint_url``: where clients reach it, when that is not where this process
    does (MinIO behind a proxy): presigned URLs are signed for that host.
    ``addressing_style``: ``path`` (MinIO, most local servers), ``virtual`` or ``auto``.
    Credentials: the access key pair, or None for boto3's own chain (AWS_* variables,
    an instance role). ``timeout`` bounds connecting and each read, ``attempts`` is how
    many tries a call gets (boto3's standard retry mode: throttling, 5xx, resets).
    """

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        addressing_style: str = "auto",
        timeout: float = 30.0,
        attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ValueError("the bucket is required")
        if (access_key_id is None) != (secret_access_key is None):
            raise ValueError("give both the access key id and the secret access key, or neither")
        if addressing_style not in ("auto", "path", "virtual"):
            raise ValueError(
                f"addressing_style must be auto, path or virtual, not {addressing_style!r}"
            )
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        config = Config(
            signature_version="s3v4",
            region_name=region,
            s3={"addressing_style": addressing_style},
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": attempts, "mode": "standard"},
            # botocore >= 1.36 adds CRC checksums to every upload by default; R2 and
            # older MinIO refused them: checksums only where an operation needs one
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        credentials = {
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "aws_session_token": session_token,
        }
        self._client: Any = _new_client(endpoint_url, region, config, credentials)
        # presigning is local: a client for the public host signs the URLs clients use
        self._signer: Any = (
            _new_client(public_endpoint_url, region, config, credentials)
            if public_endpoint_url
            else self._client
        )

    async def aclose(self) -> None:
        """Close the connection pools (boto3 clients own one each)."""
        for client in {id(c): c for c in (self._client, self._signer)}.values():
            await asyncio.to_thread(client.close)

    # -- MediaStorage ----------------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        check_storage_key(key)
        await self._call(
            "put",
            key,
            self._client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
        )

    async def get(self, key: str) -> bytes:
        check_storage_key(key)

        def read() -> bytes:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
            body = answer["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data

        return await self._call("get", key, read)

    async def signed_url(self, key: str, expires_in: int) -> str:
        """A presigned GET URL; ObjectNotFound for a missing object (asked first: a URL
        for nothing would only fail in the user's hands)."""
        check_storage_key(key)
        await self._call("head", key, self._client.head_object, Bucket=self.bucket, Key=key)
        return str(
            self._signer.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=_expiry(expires_in),
            )
        )

    async def delete(self, key: str) -> None:
        """S3 answers 204 for a missing object too: deleting it again is fine."""
        check_storage_key(key)
        await self._call("delete", key, self._client.delete_object, Bucket=self.bucket, Key=key)

    # -- beyond the port -------------------------------------------------------------------

    async def signed_upload_url(self, key: str, content_type: str, expires_in: int) -> str:
        """A presigned PUT URL: whoever holds it may store ``key`` for ``expires_in``
        seconds, sending ``Content-Type: <content_type>`` (signed: another type is
        refused by the service)."""
        check_storage_key(key)
        return str(
            self._signer.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=_expiry(expires_in),
            )
        )

    async def content_type(self, key: str) -> str:
        """The stored object's Content-Type (ObjectNotFound when missing)."""
        check_storage_key(key)
        head = await self._call("head", key, self._client.head_object, Bucket=self.bucket, Key=key)
        return str(head.get("ContentType", ""))

    # -- errors ----------------------------------------------------------------------------

    async def _call(self, what: str, key: str, call: Callable[..., _T], **kwargs: Any) -> _T:
        try:
            return await asyncio.to_thread(call, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _NOT_FOUND and what != "put":
                raise ObjectNotFound(key) from None
            if code == "NoSuchBucket":
                raise StorageUnavailable(f"s3: the bucket {self.bucket!r} does not exist") from None
            if code in _REFUSED:
                raise StorageUnavailable(
                    f"s3: {what} {key} was refused ({code}): check S3_ACCESS_KEY_ID, "
                    f"S3_SECRET_ACCESS_KEY and the bucket's policy"
                ) from None
            raise StorageUnavailable(
                f"s3: {what} {key} failed: {code or status} {error.get('Message', '')}".rstrip()
            ) from None
        except BotoCoreError as exc:  # unreachable, timed out, a reset connection
            raise StorageUnavailable(
                f"s3: {what} {key} failed: {type(exc).__name__}: {exc}"
            ) from None


_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> Any:
    """One botocore session a process: it loads S3's service model once, not per client."""
    return botocore.session.get_session()


def _new_client(
    endpoint_url: str | None, region: str, config: Config, credentials: dict[str, str | None]
) -> Any:
    with _SESSION_LOCK:  # a session makes clients one at a time
        return _session().create_client(
            "s3", region_name=region, endpoint_url=endpoint_url, config=config, **credentials
        )


def _expiry(expires_in: int) -> int:
    if expires_in <= 0:
        raise ValueError("expires_in must be positive")
    return min(int(expires_in), MAX_EXPIRES_IN)
