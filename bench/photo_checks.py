"""The training photo checks on 12 MP JPEGs: photos per second per core.

Each photo is scikit-image's astronaut upscaled to 4000x3000 with sensor-like noise
(tests/contract/photos.twelve_megapixels), JPEG quality 92 (~4-5 MB, a phone photo's
size). Two figures:
- per core: ``OpenCvPhotoAnalyser.analyse_now`` one photo after another in one thread
  (decode, orientation, normalise and re-encode, sharpness, luminance, faces, hash);
- an upload of 30: ``analyse`` for 30 photos at once, as concurrent uploads run them
  (the analyser's own worker threads, one per core the process may use).

Each is measured in wall-clock seconds and in CPU seconds of the process (all its
threads, OpenCV's included). On a shared machine the wall clock says how long the
photos took under that load; the CPU time is what they cost, nearly independent of
the load, and ``cpu / cores`` is what an upload takes on idle cores.

    .venv/bin/python -m bench.photo_checks [--photos 30] [--out bench/results/...json]
        [--analyser path/to/analyser.py]   # another version, e.g. from git show REV:...
        [--quiet-below 1.0 --wait 300]     # first wait (at most 300 s) for a 1-minute
                                           # load average under 1.0

The load average and ``uptime`` are recorded with the result: on a shared machine
they say how much of the CPU the benchmark really had.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2

from tests.contract import photos

Analyser = Any  # OpenCvPhotoAnalyser of this tree or of another version (--analyser)


def make_photos(distinct: int) -> list[bytes]:
    return [photos.jpeg(photos.twelve_megapixels(seed)) for seed in range(distinct)]


def load_analyser(path: Path | None) -> ModuleType:
    if path is None:
        from genstudio.adapters.vision import analyser

        return analyser
    spec = importlib.util.spec_from_file_location("analyser_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_core(analyser: Analyser, batch: list[bytes], count: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each photo, one after another in this thread."""
    walls, cpus = [], []
    for i in range(count):
        started, cpu = time.perf_counter(), time.process_time()
        result = analyser.analyse_now(batch[i % len(batch)])
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
        assert result.measures is not None and result.measures.faces, "the face was not found"
    return walls, cpus


async def upload_of(analyser: Analyser, batch: list[bytes], count: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``count`` photos checked at once."""
    started, cpu = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*(analyser.analyse(batch[i % len(batch)]) for i in range(count)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert all(r.measures is not None for r in results)
    return elapsed, cpu


def wait_for_quiet(below: float, at_most: float) -> None:
    deadline = time.monotonic() + at_most
    while os.getloadavg()[0] >= below and time.monotonic() < deadline:
        time.sleep(5)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _seconds(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "p90": round(sorted(values)[int(0.9 * (len(values) - 1))], 4),
        "min": round(min(values), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--distinct", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--analyser", type=Path, default=None)
    parser.add_argument("--quiet-below", type=float, default=None)
    parser.add_argument("--wait", type=float, default=300.0)
    args = parser.parse_args()

    module = load_analyser(args.analyser)
    batch = make_photos(args.distinct)
    analyser = module.OpenCvPhotoAnalyser()
    analyser.analyse_now(batch[0])  # warm: the cascade loaded, code paths paged in
    if args.quiet_below is not None:
        wait_for_quiet(args.quiet_below, args.wait)
    load_before, uptime_before = os.getloadavg(), uptime()
    walls, cpus = per_core(analyser, batch, args.photos)
    upload, upload_cpu = asyncio.run(upload_of(analyser, batch, args.photos))
    load_after, uptime_after = os.getloadavg(), uptime()
    cores = len(os.sched_getaffinity(0))
    result = {
        "benchmark": "photo_checks",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "analyser": str(args.analyser or "adapters/vision/analyser.py"),
        "machine": {
            "cpus": cores,
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(),
            "load_average_1m": [round(load_before[0], 2), round(load_after[0], 2)],
            "uptime": [uptime_before, uptime_after],
        },
        "photo": {
            "width": 4000,
            "height": 3000,
            "jpeg_bytes": round(statistics.mean(len(b) for b in batch)),
        },
        "per_core": {
            "photos": args.photos,
            "wall_seconds": _seconds(walls),
            "cpu_seconds": _seconds(cpus),
            "photos_per_second_wall": round(len(walls) / sum(walls), 2),
            "photos_per_cpu_second": round(len(cpus) / sum(cpus), 2),
            "seconds_for_30_wall": round(30 * sum(walls) / len(walls), 2),
            "cpu_seconds_for_30": round(30 * sum(cpus) / len(cpus), 2),
        },
        "upload_concurrent": {
            "photos": args.photos,
            "wall_seconds": round(upload, 2),
            "cpu_seconds": round(upload_cpu, 2),
            "on_idle_cores_seconds": round(upload_cpu / cores, 2),
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
