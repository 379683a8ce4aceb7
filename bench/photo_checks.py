"""The training photo checks on 12 MP JPEGs: photos per second per core.

Each photo is scikit-image's astronaut upscaled to 4000x3000 with sensor-like noise
(tests/contract/photos.twelve_megapixels), JPEG quality 92 (~4-5 MB, a phone photo's
size). Two figures:
- per core: ``OpenCvPhotoAnalyser.analyse_now`` one photo after another in one thread
  (decode, orientation, normalise and re-encode, sharpness, luminance, faces, hash);
- an upload of 30: ``analyse`` for 30 photos at once, as concurrent uploads run them
  (asyncio.to_thread: the default executor's threads, on every core the process has).

    .venv/bin/python -m bench.photo_checks [--photos 30] [--out bench/results/...json]

The load average is recorded with the result: on a shared machine it says how much
of the CPU the benchmark really had.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2

from adapters.vision.analyser import OpenCvPhotoAnalyser
from tests.contract import photos


def make_photos(distinct: int) -> list[bytes]:
    return [photos.jpeg(photos.twelve_megapixels(seed)) for seed in range(distinct)]


def per_core(analyser: OpenCvPhotoAnalyser, batch: list[bytes], count: int) -> list[float]:
    timings = []
    for i in range(count):
        started = time.perf_counter()
        result = analyser.analyse_now(batch[i % len(batch)])
        timings.append(time.perf_counter() - started)
        assert result.measures is not None and result.measures.faces, "the face was not found"
    return timings


async def upload_of(analyser: OpenCvPhotoAnalyser, batch: list[bytes], count: int) -> float:
    started = time.perf_counter()
    results = await asyncio.gather(*(analyser.analyse(batch[i % len(batch)]) for i in range(count)))
    elapsed = time.perf_counter() - started
    assert all(r.measures is not None for r in results)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--distinct", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    batch = make_photos(args.distinct)
    analyser = OpenCvPhotoAnalyser()
    analyser.analyse_now(batch[0])  # warm: the cascade loaded, code paths paged in
    load_before = os.getloadavg()
    timings = per_core(analyser, batch, args.photos)
    upload = asyncio.run(upload_of(analyser, batch, args.photos))
    load_after = os.getloadavg()
    result = {
        "benchmark": "photo_checks",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(),
            "load_average_1m": [round(load_before[0], 2), round(load_after[0], 2)],
        },
        "photo": {
            "width": 4000,
            "height": 3000,
            "jpeg_bytes": round(statistics.mean(len(b) for b in batch)),
        },
        "per_core": {
            "photos": args.photos,
            "seconds_median": round(statistics.median(timings), 4),
            "seconds_p90": round(sorted(timings)[int(0.9 * (len(timings) - 1))], 4),
            "photos_per_second": round(len(timings) / sum(timings), 2),
            "seconds_for_30": round(30 * sum(timings) / len(timings), 2),
        },
        "upload_concurrent": {"photos": args.photos, "seconds": round(upload, 2)},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
