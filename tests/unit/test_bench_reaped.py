"""The benchmark waits for pgbench's backends to be reaped before it reads the
Postgres server's CPU (bench/run.py ``wait_reaped``): a backend reaped between the
reading of the postmaster's times and of its own would be counted in neither."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.run import wait_reaped


def test_it_returns_once_the_processes_have_exited_and_been_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    try:
        started = time.monotonic()
        # reaped here (its parent), as the postmaster reaps its backends
        assert child.wait(timeout=10) == 0
        assert wait_reaped({child.pid}, timeout=1.0)
        assert time.monotonic() - started < 5
    finally:
        child.kill()


def test_a_process_still_running_is_reported_after_the_timeout() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = time.monotonic()
        assert not wait_reaped({child.pid}, timeout=0.2)
        assert 0.2 <= time.monotonic() - started < 5
    finally:
        child.kill()
        child.wait()


def test_an_exited_process_not_yet_reaped_is_still_waited_for() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # a zombie: exited, not yet waited for
            with open(f"/proc/{child.pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] == "Z":
                    break
            time.sleep(0.01)
        assert not wait_reaped({child.pid}, timeout=0.1)
        child.wait()
        assert wait_reaped({child.pid}, timeout=1.0)
    finally:
        child.kill()
