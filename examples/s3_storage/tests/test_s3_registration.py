"""MEDIA_STORAGE=s3 finds this package through its entry point, and its factory reads
the S3_* variables genstudio hands it, refusing what is missing or malformed."""

from __future__ import annotations

import importlib.metadata
import uuid
from collections.abc import Iterator

import boto3
import pytest
from genstudio.entrypoints.settings import Settings
from genstudio.entrypoints.storage import build_storage
from moto.server import ThreadedMotoServer

from genstudio_s3 import S3Storage, from_settings


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_the_package_registers_s3_under_genstudio_s_media_storage_group() -> None:
    [entry] = [
        e
        for e in importlib.metadata.entry_points(group="genstudio.media_storage")
        if e.name == "s3"
    ]
    assert entry.value == "genstudio_s3:from_settings"
    assert entry.load() is from_settings


async def test_media_storage_s3_builds_this_storage_from_the_s3_variables(
    s3_url: str, tmp_path: object
) -> None:
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    ).create_bucket(Bucket=bucket)
    settings = Settings.from_env(
        {
            "MEDIA_STORAGE": "s3",
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": s3_url,
            "S3_ADDRESSING_STYLE": "path",
            "S3_ACCESS_KEY_ID": "k",
            "S3_SECRET_ACCESS_KEY": "s",
            "S3_TIMEOUT": "5",
        }
    )
    storage = build_storage(settings)  # what genstudio's processes do at start
    assert isinstance(storage, S3Storage)
    try:
        assert (storage.bucket, storage.endpoint_url) == (bucket, s3_url)
        await storage.put("u/one.png", b"one", "image/png")
        assert await storage.get("u/one.png") == b"one"
    finally:
        await storage.aclose()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "MEDIA_STORAGE=s3 needs S3_BUCKET"),
        ({"S3_BUCKET": "b", "S3_ACCESS_KEY_ID": "k"}, "S3_SECRET_ACCESS_KEY is unset"),
        ({"S3_BUCKET": "b", "S3_SECRET_ACCESS_KEY": "s"}, "S3_ACCESS_KEY_ID is unset"),
        ({"S3_BUCKET": "b", "S3_ADDRESSING_STYLE": "dns"}, "S3_ADDRESSING_STYLE must be"),
        ({"S3_BUCKET": "b", "S3_TIMEOUT": "soon"}, "S3_TIMEOUT must be a number"),
        ({"S3_BUCKET": "b", "S3_ATTEMPTS": "0"}, "S3_ATTEMPTS must be positive"),
    ],
)
def test_missing_or_malformed_variables_stop_the_process_naming_them(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SystemExit, match=message):
        from_settings(Settings(), env)
