"""The example adapters as a deployment gets them (issue #23): genstudio's wheel and the
two examples' wheels (examples/s3_storage, examples/fal_gpu) installed into a fresh
virtual environment outside the repository, where each example's own tests run the
exported contract suites over it and find it registered under its entry point.

Offline and built the way tests/e2e/test_installed_wheel.py builds genstudio's wheel
(whose helpers this uses): wheels from copies of the sources with this environment's
setuptools, dependencies linked in from this environment (the closure of
genstudio[testing] and of each example's ``test`` extra), ``pip check`` clean. The
examples' tests are copied next to their pyproject.toml, without their sources: what
they import comes from the installed wheels.
"""

from __future__ import annotations

import re
import shutil
import sys
import sysconfig
from collections import deque
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement

from tests.e2e.test_installed_wheel import (
    ROOT,
    build_wheel,
    fresh_environment,
    requirements,
    run,
)

pytestmark = pytest.mark.e2e

EXAMPLES = {"s3_storage": "genstudio_s3", "fal_gpu": "genstudio_fal"}


def example_wheel(work: Path, example: str, package: str) -> Path:
    src, dist = work / f"{example}-src", work / f"{example}-dist"
    shutil.copytree(
        ROOT / "examples" / example / package,
        src / package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / "examples" / example / name, src / name)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "--no-index", "-w", dist, src, cwd=work)  # fmt: skip
    [wheel] = dist.glob("*.whl")
    return wheel


def closure_beyond_genstudio(wheel: Path) -> list[metadata.Distribution]:
    """The distributions the example's ``test`` extra needs besides genstudio, as this
    environment installed them."""
    seen: dict[str, metadata.Distribution] = {}
    todo = deque(requirements(wheel, {"test"}))
    while todo:
        req: Requirement = todo.popleft()
        key = req.name.lower().replace("_", "-")
        if key in seen or key == "genstudio":
            continue
        dist = metadata.distribution(req.name)
        assert not req.specifier or dist.version in req.specifier, (req, dist.version)
        seen[key] = dist
        for line in dist.requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(
                dep.marker.evaluate({"extra": e}) for e in set(req.extras) | {""}
            ):
                todo.append(dep)
    return list(seen.values())


def link_missing(dists: list[metadata.Distribution], site: Path) -> None:
    """Each distribution's top-level files and folders the environment lacks, linked in
    from this environment's site-packages (its dist-info too, for ``pip check``)."""
    ours = Path(sysconfig.get_paths()["purelib"])
    for dist in dists:
        for file in dist.files or []:
            top = PurePosixPath(str(file)).parts[0]
            if top in ("..", "__pycache__") or (site / top).exists():
                continue
            if (ours / top).exists():
                (site / top).symlink_to(ours / top)


def test_the_examples_installed_from_wheels_pass_the_exported_contract_suites(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    work = tmp_path_factory.mktemp("installed-examples")
    assert not work.resolve().is_relative_to(ROOT)
    venv = fresh_environment(work, build_wheel(work))
    python = venv / "bin" / "python"
    site = Path(
        run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=work
        ).strip()
    )
    for example, package in EXAMPLES.items():
        wheel = example_wheel(work, example, package)
        link_missing(closure_beyond_genstudio(wheel), site)
        run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
            "--no-index", wheel, cwd=work)  # fmt: skip
    run(sys.executable, "-m", "pip", "--python", python, "check", cwd=work)

    for example, package in EXAMPLES.items():
        where = run(python, "-c", f"import {package}; print(*{package}.__path__)", cwd=work)
        assert Path(where.strip()).is_relative_to(venv), where
        tests = work / f"{example}-tests"
        shutil.copytree(ROOT / "examples" / example / "tests", tests / "tests")
        shutil.copy2(ROOT / "examples" / example / "pyproject.toml", tests / "pyproject.toml")
        out = run(
            python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-k", "Contract or registers", cwd=tests, timeout=300,
        )  # fmt: skip
        summary = out.strip().splitlines()[-1]
        passed = re.match(r"(\d+) passed(,|$| in)", summary)
        assert passed and "failed" not in summary and "error" not in summary, out
        # the exported contract's checks (a dozen or more) and the entry point's
        assert int(passed.group(1)) >= 10, out
