"""Worker memory (issue #20): a `genstudio worker`'s resident memory, idle and steady
through jobs, in the configurations a deployment runs.

    .venv/bin/python -m bench.worker_memory [--jobs 40] [--only NAME] [--python PATH] [--out F]

Each configuration starts a real API (`genstudio serve`) and a real worker
(`genstudio worker`) on the machine's Postgres (a fresh database) and Redis (db 11),
with Modal's stand-in (tests/standins/modal.py, a loopback server speaking Modal's
web-endpoint protocol) as the GPU where the configuration names Modal. It samples the
worker's VmRSS every 50 ms: idle (10 s after it listens), peak, and steady (the last
sample after every job finished). Needs nothing but this repository's virtual
environment and the two servers; writes bench/results/<date>-worker-memory.json.

The dev venv holds the test tools, some of which other packages import when present
(runpod's FastAPI under taskiq-dependencies, Flask's Werkzeug under dependency-injector):
``--python`` measures processes of another interpreter instead, e.g. a venv with only
the wheel installed (``python -m venv /tmp/prod && /tmp/prod/bin/pip install .``), which
is what the image runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
GENSTUDIO = [sys.executable, "-m", "genstudio.entrypoints.cli"]
ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
SECRET = "bench-secret-" + "x" * 32
#: a configuration's GENSTUDIO_CLASSIFIER_URL meaning "start `genstudio classifier` first"
CLASSIFIER_STARTED_HERE = "started-here"

CONFIGS: dict[str, dict[str, str]] = {
    # a production worker: the GPU is Modal's; images checked by OpenAI or nobody
    "modal, image moderation off": {"GENSTUDIO_MODERATION_IMAGES": "off"},
    # the same with NudeNet classifying every output in the worker (the default)
    "modal, NudeNet on outputs": {"GENSTUDIO_MODERATION_IMAGES": "nudenet"},
    # no GPU provider configured: the CPU preview renderer runs in the worker
    "local renderer, NudeNet on outputs": {"GENSTUDIO_MODERATION_IMAGES": "nudenet"},
    # NudeNet on every output in `genstudio classifier`, one per host, which the API and
    # the worker ask (GENSTUDIO_CLASSIFIER_URL); its own memory is reported beside
    "modal, NudeNet in the classifier service": {
        "GENSTUDIO_MODERATION_IMAGES": "nudenet",
        "GENSTUDIO_CLASSIFIER_URL": CLASSIFIER_STARTED_HERE,
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stopped = pid, [], False

    samples: list[int]

    def run(self) -> None:
        while not self.stopped:
            try:
                self.samples.append(_rss_kib(self.pid))
            except OSError:
                return
            time.sleep(0.05)


def _wait_ready(base: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{base} was not ready after {timeout:.0f} s")


def _run_config(name: str, extra: dict[str, str], jobs: int, log_dir: Path) -> dict[str, Any]:
    from tests.standins.modal import ModalStandin

    db = f"bench_wm_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    db_url = ADMIN.rsplit("/", 1)[0] + f"/{db}"
    modal = ModalStandin(token_id="wk", token_secret="ws") if "modal" in name else None
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS,
        "SUPABASE_JWT_SECRET": SECRET,
        "PORT": str(port),
        "GENSTUDIO_DATA_DIR": str(log_dir / "data"),
        "GENSTUDIO_RATE_LIMITS": "off",
        "GENSTUDIO_LOG_FORMAT": "json",
        **extra,
    }
    procs: list[subprocess.Popen[bytes]] = []
    classifier: subprocess.Popen[bytes] | None = None
    classifier_samples: Sampler | None = None
    slug = name.replace(" ", "_").replace(",", "")
    try:
        if env.get("GENSTUDIO_CLASSIFIER_URL") == CLASSIFIER_STARTED_HERE:
            classifier_port = _free_port()
            env["GENSTUDIO_CLASSIFIER_URL"] = f"http://127.0.0.1:{classifier_port}"
            log = open(log_dir / f"{slug}-classifier.log", "wb")  # noqa: SIM115 - closed at exit
            classifier = subprocess.Popen(
                [*GENSTUDIO, "classifier", "--port", str(classifier_port)],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
            _wait_ready(env["GENSTUDIO_CLASSIFIER_URL"])
            classifier_samples = Sampler(classifier.pid)
            classifier_samples.start()
        if modal is not None:
            modal.start()
            env |= {
                "MODAL_BASE_URL": f"http://127.0.0.1:{modal.port}",
                "MODAL_TOKEN_ID": "wk",
                "MODAL_TOKEN_SECRET": "ws",
            }
        subprocess.run([*GENSTUDIO, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
        for kind in ("serve", "worker"):
            log = open(log_dir / f"{slug}-{kind}.log", "wb")  # noqa: SIM115 - closed at exit
            procs.append(
                subprocess.Popen([*GENSTUDIO, kind], env=env, cwd=ROOT, stdout=log, stderr=log)
            )
        worker = procs[1]
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base)
        sampler = Sampler(worker.pid)
        sampler.start()
        time.sleep(10)
        idle = _rss_kib(worker.pid)
        user = str(uuid.uuid4())
        cli = subprocess.run(
            [*GENSTUDIO, "credits", "grant", user, str(jobs * 10)],
            env=env,
            cwd=ROOT,
            capture_output=True,
        )
        assert cli.returncode == 0, cli.stderr.decode()
        token = (
            subprocess.run(
                [*GENSTUDIO, "token", "--user", user],
                env=env,
                cwd=ROOT,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        headers = {"Authorization": f"Bearer {token}"}
        started = time.monotonic()
        ids = []
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for i in range(jobs):
                r = client.post(
                    "/v1/generate/image",
                    json={
                        "model": "flux-schnell",
                        "prompt": f"a lighthouse at dusk {i}",
                        "width": 512,
                        "height": 512,
                    },
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            done: dict[str, str] = {}
            while len(done) < len(ids) and time.monotonic() - started < 300:
                for job in ids:
                    if job not in done:
                        status = client.get(f"/v1/generate/{job}").json()["status"]
                        if status in ("succeeded", "failed", "cancelled"):
                            done[job] = status
                time.sleep(0.5)
        elapsed = time.monotonic() - started
        time.sleep(2)
        sampler.stopped = True
        sampler.join()
        steady = _rss_kib(worker.pid)
        beside: dict[str, Any] = {}
        if classifier is not None and classifier_samples is not None:
            classifier_samples.stopped = True
            classifier_samples.join()
            ready = httpx.get(f"{env['GENSTUDIO_CLASSIFIER_URL']}/health/ready").json()
            beside["classifier_service"] = {
                "images_classified": ready["classified"],  # the outputs, asked by the worker
                "rss_mib": {
                    "peak": round(max(classifier_samples.samples) / 1024, 1),
                    "steady_after_jobs": round(_rss_kib(classifier.pid) / 1024, 1),
                },
            }
        return {
            "config": name,
            "jobs": jobs,
            "succeeded": sum(1 for s in done.values() if s == "succeeded"),
            "seconds": round(elapsed, 1),
            "worker_rss_mib": {
                "idle": round(idle / 1024, 1),
                "peak": round(max(sampler.samples) / 1024, 1),
                "steady_after_jobs": round(steady / 1024, 1),
            },
            **beside,
        }
    finally:
        if classifier is not None:
            procs.append(classifier)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if modal is not None:
            modal.stop()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--only", action="append", help="run only the configurations whose name holds this"
    )
    parser.add_argument(
        "--python",
        type=Path,
        help="the interpreter of the processes measured (default: this one, the dev venv); "
        "e.g. a venv where only the wheel is installed, as in the image",
    )
    args = parser.parse_args()
    if args.python is not None:
        GENSTUDIO[0] = str(args.python)  # every process below is started through it
    installed = subprocess.run(
        [GENSTUDIO[0], "-c", "import genstudio.core, sys; print(genstudio.core.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll
    log_dir = Path("/tmp") / f"genstudio-bench-wm-{uuid.uuid4().hex[:6]}"
    log_dir.mkdir(parents=True)
    results = []
    for name, extra in CONFIGS.items():
        if args.only and not any(part in name for part in args.only):
            continue
        result = _run_config(name, extra, args.jobs, log_dir)
        print(json.dumps(result), flush=True)
        results.append(result)
    report = {
        "benchmark": "worker memory (bench/worker_memory.py)",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "interpreter": GENSTUDIO[0],
        "genstudio_from": installed,
        "target": "a worker under 150 MiB steady",
        "results": results,
        "logs": str(log_dir),
    }
    out = args.out or ROOT / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}-worker-memory.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
