"""Settings from the environment, and secrets kept in the data directory (processes
that start together agree on one)."""

from __future__ import annotations

import multiprocessing
import stat
import time
from pathlib import Path

import pytest

from genstudio.entrypoints.settings import Settings, kept_secret


def _make(data_dir: str, start_at: float, out: multiprocessing.Queue[str]) -> None:
    while time.time() < start_at:  # start together, to race for the file
        pass
    out.put(kept_secret(Path(data_dir), "media_secret"))


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = context.Queue()
    start_at = time.time() + 2.0
    procs = [
        context.Process(target=_make, args=(str(tmp_path / "data"), start_at, results))
        for _ in range(6)
    ]
    for proc in procs:
        proc.start()
    values = [results.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0
    path = tmp_path / "data" / "media_secret"
    assert len(set(values)) == 1
    assert values[0] == path.read_text() and len(values[0]) >= 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["media_secret"]  # no candidates left
    assert kept_secret(tmp_path / "data", "media_secret") == values[0]  # kept


def test_on_off_settings_take_the_usual_spellings_and_refuse_others() -> None:
    assert Settings.from_env({}).database.prepared is True
    for raw, value in (("off", False), ("0", False), ("FALSE", False), ("on", True), ("1", True)):
        assert Settings.from_env({"GENSTUDIO_DB_PREPARED": raw}).database.prepared is value
    with pytest.raises(SystemExit, match="GENSTUDIO_DB_PREPARED must be on or off"):
        Settings.from_env({"GENSTUDIO_DB_PREPARED": "maybe"})


def test_job_timeouts_have_a_default_and_per_kind_overrides() -> None:
    from genstudio.entrypoints.gpus import build_policy

    timeouts = build_policy(Settings.from_env({})).timeouts
    assert [timeouts.seconds_for(k) for k in ("image", "edit", "video", "training")] == [
        900.0,
        900.0,
        900.0,
        3600.0,
    ]
    env = {"GENSTUDIO_JOB_TIMEOUT": "1200", "GENSTUDIO_JOB_TIMEOUT_VIDEO": "1800"}
    timeouts = build_policy(Settings.from_env(env)).timeouts
    assert [timeouts.seconds_for(k) for k in ("image", "video", "training")] == [
        1200.0,
        1800.0,
        3600.0,
    ]
    env = {"GENSTUDIO_JOB_TIMEOUT_TRAINING": "5400"}
    assert build_policy(Settings.from_env(env)).timeouts.seconds_for("training") == 5400.0
    with pytest.raises(SystemExit, match="GENSTUDIO_JOB_TIMEOUT_TRAINING"):
        Settings.from_env({"GENSTUDIO_JOB_TIMEOUT_TRAINING": "an hour"})
