"""The alert rules (deploy/prometheus/alerts.yml) and the Grafana dashboard
(deploy/grafana/genstudio.json) speak of metrics the app exposes, are well formed,
and each alert has its entry in docs/operations.md.

Where promtool is installed (deploy/prometheus/install-promtool.sh: Debian's
``prometheus`` package), ``promtool check rules`` and ``promtool test rules``
(alerts.test.yml: when each alert fires and when it must not) run too; without it,
the rules are checked for structure here, and that is said in the test's output."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # litestar's dependency; no stubs installed
from dependency_injector import providers
from litestar.testing import AsyncTestClient

from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "genstudio.json"
OPERATIONS = ROOT / "docs" / "operations.md"
UNUSED_DATABASE = "postgresql://genstudio@127.0.0.1:9/never-connected"

_NAME = re.compile(r"\bgenstudio_[a-z0-9_]+\b")
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _dashboard_exprs() -> list[str]:
    return [
        target["expr"] for panel in _dashboard()["panels"] for target in panel.get("targets", [])
    ]


@pytest.fixture(scope="module")
async def exposed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[set[str]]:
    """Every sample name the app's /metrics can carry, from its TYPE lines (a
    histogram's _bucket/_count/_sum, a counter's _total), the snapshot's included."""
    settings = Settings(
        database=DatabaseSettings(url=UNUSED_DATABASE),
        supabase=SupabaseSettings(jwt_secret="c" * 40),
        server=ServerSettings(data_dir=tmp_path_factory.mktemp("app")),
    )

    def configure(container: AppContainer) -> None:
        container.uow_factory.override(providers.Object(InMemoryUnitOfWorkFactory()))

    app = create_app(
        settings,
        runtime_opener=lambda s: open_runtime(s, in_process_worker=False, configure=configure),
    )
    async with AsyncTestClient(app) as client:
        text = (await client.get("/metrics")).text
    names: set[str] = set()
    for name, kind in _TYPE.findall(text):
        names.add(name)
        if kind == "histogram":
            names.update({f"{name}_bucket", f"{name}_count", f"{name}_sum"})
    yield names


def test_every_metric_the_rules_use_is_exposed(exposed: set[str]) -> None:
    used = {name for rule in _rules() for name in _NAME.findall(rule["expr"])}
    assert used, "the rules use no genstudio metric"
    assert sorted(used - exposed) == []


def test_every_metric_the_dashboard_uses_is_exposed(exposed: set[str]) -> None:
    used = {name for expr in _dashboard_exprs() for name in _NAME.findall(expr)}
    assert len(used) >= 15
    assert sorted(used - exposed) == []


def test_the_issue_s_alerts_are_all_there() -> None:
    names = {rule["alert"] for rule in _rules()}
    assert {
        "GenstudioJobFailureRateHigh",
        "GenstudioQueueWaitHigh",
        "GenstudioBreakerOpen",
        "GenstudioDeadLettersGrowing",
        "GenstudioWebhooksFailing",
        "GenstudioPushErrors",
    } <= names


def test_each_rule_is_well_formed_and_has_its_runbook_entry() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    seen: set[str] = set()
    for rule in _rules():
        name = rule["alert"]
        assert re.fullmatch(r"Genstudio[A-Za-z]+", name) and name not in seen
        seen.add(name)
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, name
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), name
        assert rule["labels"]["severity"] in ("page", "warning"), name
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        annotations = rule["annotations"]
        assert annotations["summary"], name
        assert annotations["runbook"] == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in headings, f"docs/operations.md has no section {name}"


def test_the_dashboard_is_a_grafana_dashboard_over_a_chosen_prometheus() -> None:
    dashboard = _dashboard()
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    [variable] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat", "bargauge"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        # the structure is checked above; what promtool adds (PromQL parsing, the
        # alerts' unit tests) needs it: deploy/prometheus/install-promtool.sh
        print("promtool not installed: alerts.yml checked for structure only")
        assert RULE_TESTS.exists()
        return
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=120
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
