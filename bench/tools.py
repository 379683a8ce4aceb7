"""The programs the benchmark drives: found, or installed, or refused; never swapped.

``make bench`` measures the service against ``pgbench`` with ``wrk`` as the load
generator. A run on a machine without ``wrk`` used to fall back to the Python load
generator (``bench/loadgen.py``) without a word: it takes about a third of the
machine's CPU itself and reported 36.6% of pgbench where ``wrk`` gave ~52%. So each
program is looked for, installed from the distribution's packages when it is missing
(``apt-get``, as root or through ``sudo -n``), and otherwise the run stops with what
to install. The Python generator runs only when asked for (``--tool httpx``). What
was used is printed and recorded in the results file (``tools``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

#: what to install where a program is missing (Debian and Ubuntu package names), and
#: how to get it elsewhere
WRK_PACKAGES = ["wrk"]
#: Debian ships pgbench with the server's package (postgresql-NN, which
#: postgresql-contrib depends on); postgresql-client's /usr/bin/pgbench is only a
#: wrapper that needs it
PGBENCH_PACKAGES = ["postgresql-contrib"]
ELSEWHERE = {
    "wrk": "Fedora: dnf install wrk; macOS: brew install wrk; or build it from"
    " https://github.com/wg/wrk",
    "pgbench": "Fedora: dnf install postgresql-contrib; macOS: brew install postgresql;"
    " it ships with PostgreSQL's server programs",
}


@dataclass(frozen=True)
class Tool:
    name: str
    path: str
    version: str
    #: how it came to be there: "found", or the command that installed it for this run
    source: str

    def describe(self) -> str:
        how = "" if self.source == "found" else f"; installed now: {self.source}"
        return f"{self.version} ({self.path}{how})"

    def record(self) -> dict[str, Any]:
        return asdict(self)


class Missing(SystemExit):
    """A program the benchmark needs is not there and could not be installed."""


def _version(path: str, name: str) -> str | None:
    """The program's version line, or None if it does not run (a wrapper without the
    program behind it, as Debian's postgresql-client-common gives for pgbench)."""
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    first = (out.stdout.strip() or out.stderr.strip()).splitlines()
    line = first[0].strip() if first else ""
    # wrk answers --version with its banner and exit status 1
    if not line.startswith(name) or (out.returncode != 0 and name != "wrk"):
        return None
    return line.split(" Copyright")[0]


def _find(name: str, extra: list[str]) -> tuple[str, str] | None:
    candidates = [p for p in [shutil.which(name)] if p] + extra
    for path in candidates:
        version = _version(path, name)
        if version is not None:
            return path, version
    return None


def _pgbench_dirs() -> list[str]:
    """pgbench outside PATH: Debian's and the PGDG RPMs' server directories, newest
    first."""
    found = glob.glob("/usr/lib/postgresql/*/bin/pgbench") + glob.glob("/usr/pgsql-*/bin/pgbench")

    def major(path: str) -> int:
        digits = "".join(c for c in path.split("/")[-3] if c.isdigit())
        return int(digits or 0)

    return sorted(found, key=major, reverse=True)


def _apt_install(packages: list[str], log: Any) -> tuple[str | None, str]:
    """Install ``packages`` with apt-get: the command that did it, or None and why not."""
    apt = shutil.which("apt-get")
    if apt is None:
        return None, "there is no apt-get on this machine"
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif (
        shutil.which("sudo")
        and subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode == 0
    ):
        prefix = ["sudo", "-n"]
    else:
        return None, "installing needs root (and sudo asks for a password here)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, apt, "install", "-y", "--no-install-recommends", *packages]
    command = " ".join(["apt-get", "install", "-y", *packages])
    log(f"installing {' '.join(packages)}: {command}")
    out = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:  # a fresh machine has no package lists yet
        log("apt-get install failed; updating the package lists and trying again")
        subprocess.run([*prefix, apt, "update"], capture_output=True, env=env, check=False)
        out = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        return None, f"{command} failed: {(out.stderr or out.stdout).strip()[-600:]}"
    return command, ""


def ensure(
    name: str, packages: list[str], *, extra: list[str] | None = None, install: bool, log: Any
) -> Tool:
    """``name`` as found, or as installed now from ``packages``; else stop the run."""
    found = _find(name, extra or [])
    if found is not None:
        return Tool(name, found[0], found[1], "found")
    if not install:
        why = "installing was turned off (--no-install)"
    else:
        command, why = _apt_install(packages, log)
        if command is not None:
            found = _find(name, _pgbench_dirs() if name == "pgbench" else [])
            if found is not None:
                return Tool(name, found[0], found[1], command)
            why = f"{command} succeeded but {name} still does not run"
    raise Missing(
        f"make bench needs {name} and it is not installed; {why}.\n"
        f"Install it and run again: apt-get install {' '.join(packages)} (Debian, Ubuntu);"
        f" {ELSEWHERE[name]}."
    )


def load_generator(requested: str, *, install: bool, log: Any) -> Tool:
    """wrk, unless the Python generator was asked for by name."""
    if requested == "httpx":
        import httpx

        return Tool(
            "httpx", f"{sys.executable} -m bench.loadgen", f"httpx {httpx.__version__}", "found"
        )
    try:
        return ensure("wrk", WRK_PACKAGES, install=install, log=log)
    except Missing as exc:
        raise Missing(
            f"{exc}\nOr measure with the Python load generator, asking for it by name:"
            ' make bench BENCH_ARGS="--tool httpx" (it takes about a third of the CPU'
            " itself: its ratios are lower and not comparable with wrk's)."
        ) from None


def pgbench(*, install: bool, log: Any) -> Tool:
    return ensure("pgbench", PGBENCH_PACKAGES, extra=_pgbench_dirs(), install=install, log=log)
