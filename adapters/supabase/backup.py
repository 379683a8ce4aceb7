"""Logical backups of the database: ``pg_dump`` into one custom-format archive, and
``pg_restore`` of it into an empty database, in one transaction.

- **What is dumped**: the app's schemas: ``public`` (our tables, RLS policies and
  grants, Alembic's version), and ``auth`` where it is ours (migration 0001 makes a
  stand-in where Supabase Auth is absent). On Supabase, ``auth`` is Supabase Auth's
  (owned by ``supabase_auth_admin``) and is left to Supabase's own backups.
- **Consistency**: the row counts recorded beside the archive are taken in the very
  snapshot ``pg_dump`` dumps (``pg_export_snapshot`` + ``pg_dump --snapshot``), so a
  restore can be checked table by table against them, on a live database too. That
  needs a session connection: not Supavisor's transaction mode (port 6543).
- **Restore** refuses a database that already holds tables in ``public``: a restore
  drill or a recovery goes into a fresh database, and the app is pointed at it. The
  roles the grants name (``anon``, ``authenticated``, ``service_role``) are created
  where missing, as migration 0001 does; schemas that exist already (``public``) are
  not created again; ``--single-transaction --exit-on-error``: a failure leaves
  nothing behind.
- **Which client**: ``pg_dump`` must be at least the server's major version, and
  ``pg_restore`` 17 and later write ``SET transaction_timeout`` that older servers
  refuse: the tool chosen is the one of the server's major version, else the oldest
  newer one, looked for in the given folders, Debian's ``/usr/lib/postgresql/*/bin``
  and ``PATH``.
- The password never appears on a command line (``PGPASSWORD`` in the child's
  environment only).
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import importlib.util
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import psycopg
from psycopg import conninfo, sql

from genstudio.adapters.supabase.migrate import MIGRATIONS

FORMAT = "custom"
CONTENT_TYPE = "application/vnd.postgresql.custom-archive"
_VERSION = re.compile(r"\b(\d+)(?:\.(\d+))?")


class BackupError(Exception):
    """A dump or a restore that could not be done; the message says why (never a
    password)."""


class DumpInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a backup records beside its archive."""

    created_at: datetime
    sha256: str
    bytes: int
    server_version: str
    pg_dump: str  # the tool's own version line
    schemas: list[str]
    #: rows per table (``schema.table``), counted in the snapshot that was dumped
    counts: dict[str, int]
    format: str = FORMAT


# -- connections and tools -----------------------------------------------------------------


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL as a libpq conninfo without its password, and the child's environment
    with the password in ``PGPASSWORD``."""
    params = conninfo.conninfo_to_dict(_dsn(url))
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return conninfo.make_conninfo("", **{k: str(v) for k, v in params.items()}), env


def _dsn(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def tool_major(path: Path) -> int | None:
    try:
        done = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    match = _VERSION.search(done.stdout)
    return int(match.group(1)) if done.returncode == 0 and match else None


def find_tool(name: str, server_major: int, dirs: Iterable[Path] = ()) -> Path:
    """The ``name`` client (pg_dump, pg_restore) for a server of ``server_major``: of
    the same major version, else the oldest newer one. Raises BackupError naming what
    was found."""
    candidates = [
        *dirs,
        *(Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"))),
        *(Path(d) for d in os.environ.get("PATH", "").split(os.pathsep) if d),
    ]
    found: dict[Path, int] = {}
    for directory in candidates:
        path = directory / name
        if path in found or not (path.is_file() and os.access(path, os.X_OK)):
            continue
        major = tool_major(path)
        if major is not None:
            found[path] = major
    usable = sorted(
        (major, i, p) for i, (p, major) in enumerate(found.items()) if major >= server_major
    )
    if not usable:
        seen = ", ".join(f"{p} ({m})" for p, m in found.items()) or "none"
        raise BackupError(
            f"no {name} for PostgreSQL {server_major} or newer (found: {seen}); install "
            f"the PostgreSQL {server_major} client"
        )
    return usable[0][2]


async def _run(args: Sequence[str], env: dict[str, str]) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        message = err.decode(errors="replace").strip()[-2000:]
        raise BackupError(f"{Path(args[0]).name} failed ({process.returncode}): {message}")
    return out


async def _is_supabase(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
    cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'supabase_auth_admin'")
    return await cur.fetchone() is not None


async def _counts(
    conn: psycopg.AsyncConnection[tuple[object, ...]], schemas: list[str]
) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s)"
        " ORDER BY schemaname, tablename",
        [schemas],
    )
    counts = {}
    for schema, table in await cur.fetchall():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(str(schema)), sql.Identifier(str(table))
        )
        row = await (await conn.execute(query)).fetchone()
        assert row is not None
        counts[f"{schema}.{table}"] = int(str(row[0]))
    return counts


async def _server(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> tuple[int, str]:
    row = await (
        await conn.execute(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version')"
        )
    ).fetchone()
    assert row is not None
    return int(str(row[0])) // 10000, str(row[1])


# -- dump ---------------------------------------------------------------------------------


async def dump(url: str, *, tool_dirs: Iterable[Path] = ()) -> tuple[bytes, DumpInfo]:
    """The app's schemas as one custom-format archive, and what to record beside it."""
    async with await psycopg.AsyncConnection.connect(_dsn(url), autocommit=True) as conn:
        major, version = await _server(conn)
        tool = find_tool("pg_dump", major, tool_dirs)
        schemas = ["public"] if await _is_supabase(conn) else ["auth", "public"]
        await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        await conn.set_read_only(True)
        async with conn.transaction(force_rollback=True):
            row = await (await conn.execute("SELECT pg_export_snapshot()")).fetchone()
            assert row is not None
            snapshot = str(row[0])
            counts = await _counts(conn, schemas)
            target, env = _libpq(url)
            args = [str(tool), f"--format={FORMAT}", f"--snapshot={snapshot}", "--no-password"]
            args += [f"--schema={s}" for s in schemas]
            data = await _run([*args, f"--dbname={target}"], env)  # while the snapshot is held
    version_line = (await _run([str(tool), "--version"], dict(os.environ))).decode().strip()
    return data, DumpInfo(
        created_at=datetime.now(UTC),
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        server_version=version,
        pg_dump=version_line,
        schemas=schemas,
        counts=counts,
    )


# -- restore ------------------------------------------------------------------------------


def _roles_sql() -> str:
    """Migration 0001's statement that creates Supabase's roles where they are missing:
    the grants in a dump name them."""
    path = MIGRATIONS / "versions" / "0001_initial.py"
    spec = importlib.util.spec_from_file_location("genstudio_migration_0001", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.ROLES)


async def restore(url: str, data: bytes, *, tool_dirs: Iterable[Path] = ()) -> dict[str, int]:
    """Restore an archive made by :func:`dump` into the empty database at ``url``, in
    one transaction; the rows per table restored."""
    dsn = _dsn(url)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        major, _ = await _server(conn)
        cur = await conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        row = await cur.fetchone()
        if row is not None and int(str(row[0])) > 0:
            raise BackupError(
                "the database to restore into already has tables in schema public: restore "
                "into a fresh database and point DATABASE_URL at it"
            )
        await conn.execute(_roles_sql())
        cur = await conn.execute("SELECT nspname FROM pg_namespace")
        existing = {str(r[0]) for r in await cur.fetchall()}
    tool = find_tool("pg_restore", major, tool_dirs)
    target, env = _libpq(url)
    with tempfile.TemporaryDirectory(prefix="genstudio-restore-") as tmp:
        archive = Path(tmp) / "backup.dump"
        archive.write_bytes(data)  # private: the directory is 0700
        toc = (await _run([str(tool), "--list", str(archive)], env)).decode()
        schemas = re.findall(r"^\d+; \d+ \d+ SCHEMA - (\S+) ", toc, flags=re.MULTILINE)
        if "auth" in schemas and "auth" in existing:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                row = await (await conn.execute("SELECT to_regclass('auth.users')")).fetchone()
            if row is not None and row[0] is not None:
                raise BackupError(
                    "the backup holds its own auth.users, and the database to restore into "
                    "has one (Supabase Auth's?): restore into a fresh database"
                )
        listing = Path(tmp) / "toc.list"
        listing.write_text(
            re.sub(
                r"^(\d+; \d+ \d+ SCHEMA - (\S+) .*)$",
                lambda m: f";{m.group(1)}" if m.group(2) in existing else m.group(1),
                toc,
                flags=re.MULTILINE,
            )
        )
        await _run(
            [
                str(tool),
                "--single-transaction",
                "--exit-on-error",
                "--no-owner",
                "--no-password",
                f"--use-list={listing}",
                f"--dbname={target}",
                str(archive),
            ],
            env,
        )
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await _counts(conn, sorted(set(schemas) | {"public"}))
