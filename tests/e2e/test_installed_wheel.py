"""genstudio as another team gets it (issue #23): the wheel is built, installed into a
fresh virtual environment outside the repository, and a small project of that team's,
with its own ``core``, ``ports`` and ``adapters`` packages, runs its tests with the
testing kit (the memory application, the scripted GPU, the HTTP app with a token, an
exported contract suite over its own adapter): green, with no import clash.

How it stays offline and quick (~15 s on two busy cores): the wheel is built from a
copy of the package's sources with this environment's setuptools (no build isolation,
no index). genstudio itself is installed from the wheel by pip (its console script
and its pytest11 entry point as any install makes them); its dependencies are the ones
this environment installed, linked into the fresh environment's site-packages from
their own RECORDs (exactly the closure of genstudio[testing]'s requirements, nothing
else: no editable finder, no path to the repository) and checked by ``pip check``.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from collections import deque
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: what the wheel is built from (setup.py lists the layers' packages)
PACKAGE_SOURCES = ("pyproject.toml", "setup.py", "README.md", "py.typed")
LAYERS = ("core", "ports", "adapters", "entrypoints", "testing")
#: names the team's project has at its top level: nothing installed may take them
PROJECT_PACKAGES = frozenset({"core", "ports", "adapters"})


def run(*args: str | Path, cwd: Path, timeout: float = 180) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


#: the wheel this test process built (the installed-wheel, examples and release tests
#: share one build: the sources do not change during a run)
_BUILT: list[Path] = []


def build_wheel(work: Path) -> Path:
    """genstudio's wheel from a copy of the sources, built once per test process (a
    later call returns the first build, wherever it was made: its directory lives as
    long as the session's temporary directories)."""
    if _BUILT and _BUILT[0].exists():
        return _BUILT[0]
    src, dist = work / "src", work / "dist"
    src.mkdir()
    for name in PACKAGE_SOURCES:
        shutil.copy2(ROOT / name, src / name)
    for layer in LAYERS:
        shutil.copytree(ROOT / layer, src / layer, ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "--no-index", "-w", dist, src, cwd=work)  # fmt: skip
    [wheel] = dist.glob("genstudio-*.whl")
    _BUILT[:] = [wheel]
    return wheel


def wheel_record(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        [record] = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
        rows = csv.reader(io.StringIO(archive.read(record).decode()))
        return [row[0] for row in rows if row]


def requirements(wheel: Path, extras: set[str]) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = archive.read(name).decode()
    lines = [
        line.split(":", 1)[1].strip()
        for line in meta.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    return _wanted([Requirement(line) for line in lines], extras)


def _wanted(reqs: list[Requirement], extras: set[str]) -> list[Requirement]:
    return [
        r for r in reqs
        if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras | {""})
    ]  # fmt: skip


def dependency_closure(wheel: Path) -> list[metadata.Distribution]:
    """The distributions genstudio[testing] needs, as this environment installed them."""
    seen: dict[str, metadata.Distribution] = {}
    todo = deque(requirements(wheel, {"testing"}))
    while todo:
        req = todo.popleft()
        key = req.name.lower().replace("_", "-")
        if key in seen:
            continue
        dist = metadata.distribution(req.name)
        assert dist.version in req.specifier or not req.specifier, (req, dist.version)
        seen[key] = dist
        todo.extend(_wanted([Requirement(r) for r in dist.requires or []], set(req.extras)))
    return list(seen.values())


def link_dependencies(dists: list[metadata.Distribution], site: Path) -> set[str]:
    """Each distribution's top-level files and folders, linked into ``site``."""
    ours = Path(sysconfig.get_paths()["purelib"])
    linked: set[str] = set()
    for dist in dists:
        for file in dist.files or []:
            top = PurePosixPath(str(file)).parts[0]
            if top in ("..", "__pycache__") or top in linked:
                continue
            source = ours / top
            if source.exists():
                (site / top).symlink_to(source)
                linked.add(top)
    return linked


def fresh_environment(work: Path, wheel: Path) -> Path:
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=work).strip())  # fmt: skip
    linked = link_dependencies(dependency_closure(wheel), site)
    assert not linked & (PROJECT_PACKAGES | {"genstudio"}), linked & PROJECT_PACKAGES
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-index", wheel, cwd=work)  # fmt: skip
    run(sys.executable, "-m", "pip", "--python", python, "check", cwd=work)
    return venv


# -- the other team's project ----------------------------------------------------------------

PROJECT: dict[str, str] = {
    "pyproject.toml": """
        [project]
        name = "stickers"
        version = "0.1.0"
        dependencies = ["genstudio[testing]"]

        [tool.pytest.ini_options]
        pythonpath = ["."]
        testpaths = ["tests"]
        """,
    "core/__init__.py": '"""The sticker team\'s domain (nothing to do with genstudio.core)."""\n',
    "core/stickers.py": """
        from genstudio.core.model.pricing import (
            DEFAULT_CATALOG, Catalog, ModelKind, ModelSpec, PerImagePrice, SizeTier,
        )

        STICKER = ModelSpec(
            id="sticker",
            kind=ModelKind.IMAGE,
            display_name="Sticker",
            provider_model="our-team/sticker-lora",
            price=PerImagePrice((SizeTier(max_megapixels=1.06, credits=3),)),
            max_width=1024,
            max_height=1024,
            max_count=1,
        )
        CATALOG = Catalog([*DEFAULT_CATALOG.all(), STICKER])


        def sticker_prompt(subject):
            return f"die-cut sticker of {subject}, thick white border, flat colours"
        """,
    "ports/__init__.py": "",
    "ports/printing.py": """
        from typing import Protocol


        class PrintShop(Protocol):
            async def order(self, user_id, storage_key: str) -> str: ...
        """,
    "adapters/__init__.py": "",
    "adapters/print_shop.py": """
        class InMemoryPrintShop:
            def __init__(self):
                self.orders = []

            async def order(self, user_id, storage_key):
                self.orders.append((user_id, storage_key))
                return f"order-{len(self.orders)}"
        """,
    "adapters/sticker_storage.py": """
        from genstudio.ports.storage import ObjectNotFound


        class StickerStorage:
            \"\"\"Our own media storage (a genstudio port), proven by genstudio's contract.\"\"\"

            def __init__(self):
                self.objects = {}

            async def put(self, key, data, content_type):
                self.objects[key] = (bytes(data), content_type)

            async def get(self, key):
                if key not in self.objects:
                    raise ObjectNotFound(key)
                return self.objects[key][0]

            async def signed_url(self, key, expires_in):
                if key not in self.objects:
                    raise ObjectNotFound(key)
                return f"https://stickers.example/{key}?expires_in={expires_in}"

            async def delete(self, key):
                self.objects.pop(key, None)
        """,
    "tests/conftest.py": """
        import pytest

        from core.stickers import CATALOG


        @pytest.fixture
        def genstudio_catalog():
            return CATALOG
        """,
    "tests/test_stickers.py": """
        import uuid
        from pathlib import Path

        import pytest

        import adapters.print_shop
        import core
        import genstudio
        import ports.printing
        from adapters.print_shop import InMemoryPrintShop
        from core.stickers import sticker_prompt
        from genstudio.core.model.credits import EntryKind
        from genstudio.core.model.jobs import FailureReason, JobStatus
        from genstudio.core.model import pricing

        pytestmark = pytest.mark.asyncio  # pytest-asyncio's strict mode, its default
        HERE = Path(__file__).resolve().parents[1]


        def test_our_packages_and_genstudios_do_not_clash():
            for ours in (core, ports.printing, adapters.print_shop):
                assert Path(ours.__file__).resolve().is_relative_to(HERE), ours
            [installed] = genstudio.__path__
            assert "site-packages" in installed and not Path(installed).is_relative_to(HERE)
            assert Path(pricing.__file__).is_relative_to(installed)  # genstudio's own core
            assert not hasattr(core, "model")


        async def test_a_sticker_costs_3_credits_and_can_be_printed(genstudio_app, genstudio_users):
            user = await genstudio_users.with_credits(10)
            submitted = await genstudio_app.submit_image(
                user, sticker_prompt("a cat"), model="sticker", width=1024, height=1024
            )
            assert await genstudio_app.balance(user) == 7

            [job] = await genstudio_app.run_jobs()

            assert job.status is JobStatus.SUCCEEDED and job.id == submitted.job_id
            [sticker] = await genstudio_app.media_of(job.id)
            shop = InMemoryPrintShop()
            assert await shop.order(user, sticker.storage_key) == "order-1"
            assert await genstudio_app.storage.get(sticker.storage_key)


        async def test_when_the_gpu_fails_the_3_credits_come_back(
            genstudio_app, genstudio_gpu, genstudio_users
        ):
            genstudio_gpu.fails(FailureReason.INFRASTRUCTURE, times=None)
            user = await genstudio_users.with_credits(10)
            submitted = await genstudio_app.submit_image(
                user, sticker_prompt("a dog"), model="sticker", width=1024, height=1024
            )

            await genstudio_app.run_jobs()

            job = await genstudio_app.job(submitted.job_id)
            assert (job.status, job.attempts) == (JobStatus.FAILED, 3)
            assert await genstudio_app.balance(user) == 10
            kinds = [e.kind for e in await genstudio_app.ledger(user)]
            assert kinds == [EntryKind.GRANT, EntryKind.HOLD, EntryKind.RELEASE]


        async def test_over_http_with_a_token(genstudio_http, genstudio_gpu):
            genstudio_gpu.succeeds(progress=(50,))
            user = await genstudio_http.app.users.subscribed("pro_monthly")
            me = genstudio_http.headers(user)
            client = genstudio_http.client
            assert (await client.get("/v1/me")).status_code == 401

            answer = await client.post(
                "/v1/generate/image",
                json={"model": "sticker", "prompt": sticker_prompt("a frog"), "width": 1024},
                headers=me | {"Idempotency-Key": str(uuid.uuid4())},
            )
            assert answer.status_code == 202, answer.text
            await genstudio_http.run_jobs()

            job = (await client.get(f"/v1/generate/{answer.json()['id']}", headers=me)).json()
            assert job["status"] == "succeeded" and len(job["assets"]) == 1
            profile = (await client.get("/v1/me", headers=me)).json()
            assert (profile["credits"], profile["subscriptionTier"]) == (497, "pro")
        """,
    "tests/test_sticker_storage.py": """
        import pytest

        from adapters.sticker_storage import StickerStorage
        from genstudio.testing.contracts.storage import MediaStorageContract


        class TestStickerStorage(MediaStorageContract):
            @pytest.fixture
            def storage_factory(self):
                return StickerStorage
        """,
}


def write_project(root: Path) -> None:
    for name, text in PROJECT.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def test_the_wheel_installs_alone_and_another_teams_project_tests_with_the_kit(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    work = tmp_path_factory.mktemp("installed-wheel")
    assert not work.resolve().is_relative_to(ROOT)

    wheel = build_wheel(work)
    tops = {PurePosixPath(name).parts[0] for name in wheel_record(wheel)}
    assert tops == {"genstudio", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    assert "genstudio/py.typed" in wheel_record(wheel)
    assert "genstudio/testing/plugin.py" in wheel_record(wheel)
    assert any(
        n.startswith("genstudio/adapters/supabase/migrations/versions/")
        for n in wheel_record(wheel)
    )

    venv = fresh_environment(work, wheel)
    python = venv / "bin" / "python"
    where = run(python, "-c", "import genstudio; print(*genstudio.__path__)", cwd=work).strip()
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(ROOT)

    help_text = run(venv / "bin" / "genstudio", "--help", cwd=work)
    assert "serve" in help_text and "migrate" in help_text

    project = work / "stickers"
    write_project(project)
    out = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project, timeout=300)
    summary = out.strip().splitlines()[-1]
    # 4 of the team's tests and genstudio's storage contract (12 checks) over its adapter
    assert re.match(r"16 passed(,|$| in)", summary), out
