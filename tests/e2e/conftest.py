"""Run genstudio as real processes (``genstudio serve`` / ``genstudio worker``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests import servers

GENSTUDIO = [sys.executable, "-m", "genstudio.entrypoints.cli"]
ROOT = Path(__file__).resolve().parents[2]


#: the journeys poll their jobs as an app would, faster than a person: a roomy read budget
#: (a test may set its own; tests/integration/test_limits.py proves the budgets)
ROOMY_READS = {"GENSTUDIO_RATE_READS_FREE": "100000/60", "GENSTUDIO_RATE_READS_IP": "100000/60"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """The API (and optionally workers) as subprocesses, logs kept for failures."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            **ROOMY_READS,
            **env,
            "PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        }
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def cli(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run(
            [*GENSTUDIO, *args], env=self.env, cwd=ROOT, capture_output=True, timeout=timeout
        )
        assert out.returncode == 0, out.stderr.decode()[-3000:]
        return out.stdout.decode().strip()

    def start(self, name: str, *args: str) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [*GENSTUDIO, *args], env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited early:\n{self.logs(name)}")
            try:
                ready = httpx.get(f"{self.base}/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            # a worker reads the queue once it says so: a job sent before its consumer
            # group exists waits for a reconciler pass (which these tests do not run)
            if ready and ("worker" not in self.procs or self.said("worker", "worker listening")):
                return
            time.sleep(0.2)
        raise AssertionError(
            f"not ready after {timeout}s:\n{self.logs('api')}\n{self.logs('worker')}"
        )

    def said(self, name: str, text: str) -> bool:
        """Whether the process's whole log holds ``text``."""
        path = self.log_dir / f"{name}.log"
        return path.exists() and text in path.read_text(errors="replace")

    def logs(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def embedded_servers(pgdata: Path) -> list[int]:
    """The pids of the Postgres servers running on ``pgdata`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and argv[0].endswith(b"/postgres") and str(pgdata).encode() in argv:
            found.append(int(entry.name))
    return found


def until_stopped(pgdata: Path, timeout: float = 30) -> list[int]:
    """The embedded servers still running on ``pgdata`` after waiting up to ``timeout``
    seconds for them to stop (none: stopped)."""
    deadline = time.monotonic() + timeout
    while (running := embedded_servers(pgdata)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return running


@pytest.fixture(scope="module")
def redis_queue() -> Iterator[str]:
    url = servers.redis_url()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
