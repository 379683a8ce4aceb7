"""The "core is pure" contract is an allow-list: it must name every package we install."""

from __future__ import annotations

import importlib.metadata as md
import re
import tomllib
from pathlib import Path
from typing import cast

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
ALLOWED_IN_CORE = {"msgspec"}


def _config() -> dict[str, object]:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def _contract(name_prefix: str) -> dict[str, object]:
    tool = _config()["tool"]
    assert isinstance(tool, dict)
    for contract in tool["importlinter"]["contracts"]:
        if contract["name"].startswith(name_prefix):
            return dict(contract)
    raise AssertionError(f"no import-linter contract named {name_prefix!r}…")


def _installed_top_levels() -> set[str]:
    """The public top-level modules of every distribution pyproject names."""
    project = _config()["project"]
    assert isinstance(project, dict)
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements.extend(extra)
    wanted = {re.split(r"[\[<>=;!~ ]", r)[0].lower().replace("_", "-") for r in requirements}
    modules: set[str] = set()
    for module, dists in md.packages_distributions().items():
        if module.startswith("_") or not module.isidentifier():
            continue
        if any(d.lower().replace("_", "-") in wanted for d in dists):
            modules.add(module)
    return modules


def test_core_may_import_no_installed_package_but_msgspec() -> None:
    forbidden = set(cast("list[str]", _contract("core is pure")["forbidden_modules"]))
    missing = _installed_top_levels() - ALLOWED_IN_CORE - forbidden
    assert not missing, f"add to the 'core is pure' contract: {sorted(missing)}"
    assert "msgspec" not in forbidden


def test_ports_may_import_no_installed_package_but_msgspec() -> None:
    forbidden = set(cast("list[str]", _contract("ports depend only on core")["forbidden_modules"]))
    missing = _installed_top_levels() - ALLOWED_IN_CORE - forbidden
    assert not missing, f"add to the 'ports depend only on core' contract: {sorted(missing)}"


def test_the_layers_are_use_cases_over_ports_over_the_model() -> None:
    layers = _contract("layers")
    assert layers["type"] == "layers"
    assert layers["layers"] == [
        "genstudio.core.services",
        "genstudio.ports",
        "genstudio.core.model",
    ]
