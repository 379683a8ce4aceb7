"""A newcomer's first minutes, as processes on the embedded default: the README's
"Try it" block run exactly as written, and ``genstudio demo`` with and without a
service already running. Each cleans up the processes it started."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import GENSTUDIO, ROOT, Service, free_port, until_stopped

pytestmark = pytest.mark.e2e

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def embedded_env(data: Path) -> dict[str, str]:
    """Nothing configured but the data dir: the embedded default."""
    env = {**os.environ, "GENSTUDIO_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    for var in ("DATABASE_URL", "REDIS_URL", "SUPABASE_JWT_SECRET", "GENSTUDIO_PUBLIC_URL"):
        env[var] = ""
    return env


def try_it_block() -> str:
    """The first ```sh block under README's "## Try it", verbatim."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Try it\n") :]
    match = re.search(r"^```sh\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert match, "README's Try it section has no ```sh block"
    return match.group(1)


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop_group(pgid: int, timeout: float = 60) -> None:
    """SIGTERM a process group (the service stops gracefully), SIGKILL what is left."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_members(pgid):
        os.killpg(pgid, signal.SIGKILL)


def test_the_readme_try_it_block_works_pasted_whole(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make is not None, "make is needed: the README's commands are make targets"
    # `make run` as written, but never reinstalling .venv in a test (no network): the
    # shim only tells make not to remake the install stamp
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "make").write_text(f'#!/bin/sh\nexec {make} -o .venv/.installed-stamp "$@"\n')
    (shims / "make").chmod(0o755)
    data = tmp_path / "data"
    port = free_port()
    env = embedded_env(data) | {"PORT": str(port), "PATH": f"{shims}:{os.environ['PATH']}"}
    # files, not pipes: the service started in the background keeps them open
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            ["bash", "-c", try_it_block()],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group: `make run &` and the service
        )
    try:
        proc.wait(timeout=240)
        stdout, stderr = out_path.read_text(), err_path.read_text(errors="replace")
        assert proc.returncode == 0, f"{stdout}\n{stderr[-5000:]}"
        # GET /v1/me, then the finished job
        assert '"credits":20' in stdout, stdout
        job = re.findall(r'\{"id":"(' + UUID + r')","kind":"image".*', stdout)
        assert job, stdout
        final = stdout.strip().splitlines()[-1]
        assert '"status":"succeeded"' in final, stdout
        url = re.search(r'"url":"([^"]+)"', final)
        assert url is not None and f"127.0.0.1:{port}/media/" in url.group(1), final
        # the service is still up (the block leaves it running): the result downloads
        png = httpx.get(url.group(1), timeout=30)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        assert png.headers["content-disposition"] == f'inline; filename="{job[-1]}-1.png"'
        assert png.headers["x-request-id"]
    except subprocess.TimeoutExpired:
        tail = err_path.read_text(errors="replace")[-5000:]
        pytest.fail(f"the Try it block did not finish in 240 s:\n{out_path.read_text()}\n{tail}")
    finally:
        stop_group(proc.pid)
        proc.wait()
    assert until_stopped(data.resolve() / "pg") == []


def run_demo(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [*GENSTUDIO, "demo", *args], cwd=ROOT, env=env, capture_output=True, timeout=280
    )
    assert out.returncode == 0, f"{out.stdout.decode()}\n{out.stderr.decode()[-5000:]}"
    return out.stdout.decode()


def check_demo_output(stdout: str) -> dict[str, tuple[str, list[str]]]:
    """{label: (job id, [result URLs])}, after checking what the demo prints."""
    jobs = dict(re.findall(r"^(image|edit|video): job (" + UUID + ")", stdout, re.MULTILINE))
    assert set(jobs) == {"image", "edit", "video"}, stdout
    for label in jobs:  # a progress line each, ending in success
        assert re.search(rf"^  {label}\s+succeeded\s+100%", stdout, re.MULTILINE), stdout
    urls: dict[str, list[str]] = {label: [] for label in jobs}
    for label, url in re.findall(r"^  (image|edit|video)(?: poster)?: (http\S+)$", stdout, re.M):
        urls[label].append(url)
    assert [len(urls[k]) for k in ("image", "edit", "video")] == [1, 1, 2], stdout
    ledger = stdout[stdout.index("ledger (newest first):") :]
    assert len(re.findall(r"^  \S+\s+hold ", ledger, re.MULTILINE)) == 3, ledger
    assert re.search(r"^  \S+\s+grant\s+\+40 ", ledger, re.MULTILINE), ledger
    balance = re.search(r"^balance: (\d+) credits$", stdout, re.MULTILINE)
    assert balance is not None, stdout
    held = sum(int(n) for n in re.findall(r"\((?:/v1/generate/\w+), (\d+) credits held\)", stdout))
    assert int(balance.group(1)) == 40 - held, stdout
    return {label: (jobs[label], urls[label]) for label in jobs}


def test_the_demo_starts_a_service_when_none_runs_and_stops_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = embedded_env(data) | {"PORT": str(free_port())}  # nothing answers there
    stdout = run_demo(env)
    assert "starting one at http://127.0.0.1:" in stdout, stdout
    check_demo_output(stdout)
    assert "stopped the service started for the demo" in stdout
    assert until_stopped(data.resolve() / "pg") == []  # and the embedded database with it


def test_the_demo_uses_the_running_service_and_media_are_named_by_job(tmp_path: Path) -> None:
    data = tmp_path / "data"
    svc = Service(embedded_env(data), tmp_path)
    try:
        svc.start("api", "serve")
        svc.wait_ready(timeout=120)
        stdout = run_demo(svc.env)  # PORT is the service's: `make run` is up
        assert f"using the service running at {svc.base}" in stdout, stdout
        results = check_demo_output(stdout)
        expected = {
            "image": ["{job}-1.png"],
            "edit": ["{job}-1.png"],
            "video": ["{job}-1.mp4", "{job}-1-poster.png"],
        }
        for label, (job, urls) in results.items():
            for url, name in zip(urls, expected[label], strict=True):
                got = httpx.get(url, timeout=30)
                assert got.status_code == 200, (url, got.text)
                disposition = got.headers["content-disposition"]
                assert disposition == f'inline; filename="{name.format(job=job)}"'
        assert svc.procs["api"].poll() is None  # the demo left the service running
    finally:
        svc.stop_all()
    assert until_stopped(data.resolve() / "pg") == []
