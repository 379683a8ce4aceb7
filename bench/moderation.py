"""Moderation on CPU (issue #19): the rule list per text, NudeNet per image, and what
moderation adds to a submission at p99.

Four figures, each in wall-clock and in CPU seconds of this process (on a shared
machine the CPU time is what the work costs; the wall clock says what it took under
that load, recorded with the load average):

- **texts**: the operator's rule list (``RuleSet.classify``: normalisation, leetspeak
  reading, every rule's regex) over real-looking prompts, captions and usernames, with
  10, 100 and 1,000 rules (words, and a tenth of them regexes); per text, p50 and p99;
- **images per core**: ``NudeNetClassifier.classify_sync`` (decode, NudeNet's 320 px
  letterbox, onnxruntime on one thread, as the service runs it) one image after another
  on one thread, for an avatar (512 px JPEG), an edit's picture (1024 px PNG), a
  generated output (1024 px PNG) and a training photo's stored copy (1536 px JPEG),
  made from scikit-image's photographs;
- **images concurrently**: as many images at once as the process has cores, through
  ``classify_image`` (one thread each): images per second on the machine;
- **added latency per submission**: ``submit_image`` one after another, with the
  moderation the service builds (the rule list over the database, 100 rules, cached;
  the user's standing read) and without, on Postgres (the machine's; a database of its
  own, dropped after), alternating in rounds so that both meet the same load;
  ``submit_edit`` likewise with NudeNet on its 512 px picture. p50 and p99 of each,
  and the difference. (Not on the memory adapters: their unit of work copies the
  store, so a submission's time there grows with everything stored before it.)

    .venv/bin/python -m bench.moderation [--images 40] [--texts 2000] [--submissions 300]
        [--edits 40] [--out bench/results/<date>-moderation.json] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import onnxruntime  # type: ignore[import-untyped]
import psycopg
from PIL import Image
from skimage import data

from genstudio.adapters.imaging import PillowImageInspector
from genstudio.adapters.memory import InMemoryJobQueue, InMemoryStorage
from genstudio.adapters.nudenet import NudeNetClassifier
from genstudio.adapters.system import SystemClock
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.moderation import Reason, Surface
from genstudio.core.model.moderation_rules import ModerationRule, RuleAction, RuleKind, RuleSet
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.services.credits import grant_credits
from genstudio.core.services.generation.submit import submit_edit, submit_image
from genstudio.core.services.generation.uploads import Upload
from genstudio.core.services.moderation.rules import RuleListClassifier
from genstudio.core.services.moderation.service import Moderation
from genstudio.ports.moderation import Classifier
from genstudio.ports.unit_of_work import UnitOfWorkFactory

T0 = datetime(2026, 12, 8, tzinfo=UTC)

# --- inputs ------------------------------------------------------------------------

WORDS = [
    "lighthouse",
    "fox",
    "neon",
    "city",
    "portrait",
    "watercolor",
    "forest",
    "sunset",
    "dragon",
    "castle",
    "ocean",
    "cyberpunk",
    "astronaut",
    "garden",
    "mountain",
    "rain",
    "street",
    "market",
    "cat",
    "dog",
    "robot",
    "flower",
]


def texts(count: int, seed: int = 7) -> dict[str, list[str]]:
    """Prompts (20-60 words), long prompts (~2,000 characters), comments (5-20 words)
    and usernames, each with a little punctuation, digits and an accent or two."""
    rng = random.Random(seed)

    def words(n: int) -> str:
        picked = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            picked[rng.randrange(n)] = "café"
        return " ".join(picked)

    return {
        "prompt": [words(rng.randint(20, 60)) + ", 4k, detailed" for _ in range(count)],
        "long_prompt": [words(300)[:2000] for _ in range(max(1, count // 10))],
        "comment": [words(rng.randint(5, 20)) + "!" for _ in range(count)],
        "username": [f"{rng.choice(WORDS)}_{rng.randint(1, 9999)}" for _ in range(count)],
    }


def rules(count: int, seed: int = 11) -> list[ModerationRule]:
    """``count`` rules: made-up words (none of them in the texts: the common case is
    no match, every rule tried), a tenth regexes, a fifth rewrites."""
    rng = random.Random(seed)
    made = []
    for n in range(count):
        word = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(5, 9)))
        regex = n % 10 == 9
        made.append(
            ModerationRule(
                id=uuid.UUID(int=n + 1),
                pattern=rf"\b{word}\w*\s+(?:now|here)\b" if regex else word,
                kind=RuleKind.REGEX if regex else RuleKind.WORD,
                label=Reason.HATE,
                action=RuleAction.REWRITE if n % 5 == 4 else RuleAction.REFUSE,
                updated_at=T0,
            )
        )
    return made


def encoded(pixels: Any, side: int, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").resize((side, side)).save(out, fmt, quality=90)
    return out.getvalue()


def images() -> dict[str, list[bytes]]:
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]  # type: ignore[no-untyped-call]
    return {
        "avatar_512_jpeg": [encoded(p, 512, "JPEG") for p in photos],
        "edit_input_1024_png": [encoded(p, 1024, "PNG") for p in photos],
        "output_1024_png": [encoded(p[::-1], 1024, "PNG") for p in photos],
        "training_photo_1536_jpeg": [encoded(p, 1536, "JPEG") for p in photos],
    }


# --- measuring ---------------------------------------------------------------------


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "count": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 3),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "mean_ms": round(1000 * statistics.fmean(ordered), 3),
    }


def timed(call: Callable[[Any], object], inputs: list[Any]) -> tuple[list[float], float]:
    """Wall seconds of ``call`` on each input, and the CPU seconds of all of them."""
    walls = []
    cpu = time.process_time()
    for item in inputs:
        started = time.perf_counter()
        call(item)
        walls.append(time.perf_counter() - started)
    return walls, time.process_time() - cpu


async def timed_async(call: Callable[[int], Awaitable[object]], count: int) -> list[float]:
    walls = []
    for n in range(count):
        started = time.perf_counter()
        await call(n)
        walls.append(time.perf_counter() - started)
    return walls


def bench_texts(count: int) -> dict[str, Any]:
    corpus = texts(count)
    result: dict[str, Any] = {}
    for n_rules in (10, 100, 1000):
        for screened in (True, False):
            ruleset = RuleSet(rules(n_rules), screen=screened)
            assert len(ruleset) == n_rules
            per_kind: dict[str, Any] = {}
            for kind, items in corpus.items():
                walls, cpu = timed(ruleset.classify, items)
                per_kind[kind] = {
                    **summary(walls),
                    "cpu_ms_per_text": round(1000 * cpu / len(items), 4),
                    "texts_per_cpu_second": round(len(items) / cpu) if cpu else None,
                }
            result[f"{n_rules}_rules" + ("" if screened else "_unscreened")] = per_kind
    return result


def bench_images_per_core(batch: dict[str, list[bytes]], count: int) -> dict[str, Any]:
    classifier = NudeNetClassifier()
    classifier.classify_sync(batch["avatar_512_jpeg"][0])  # the model loaded, paged in
    result: dict[str, Any] = {}
    for kind, items in batch.items():
        inputs = [items[n % len(items)] for n in range(count)]
        walls, cpu = timed(classifier.classify_sync, inputs)
        result[kind] = {
            **summary(walls),
            "bytes": round(statistics.fmean(len(b) for b in items)),
            "cpu_ms_per_image": round(1000 * cpu / count, 2),
            "images_per_cpu_second": round(count / cpu, 2),
            "images_per_second_wall": round(count / sum(walls), 2),
        }
    return result


async def bench_images_concurrent(batch: dict[str, list[bytes]], count: int) -> dict[str, Any]:
    classifier = NudeNetClassifier()
    await classifier.classify_image(batch["avatar_512_jpeg"][0], "image/jpeg", Surface.OUTPUT)
    cores = len(os.sched_getaffinity(0))
    result: dict[str, Any] = {"at_once": cores}
    for kind in ("avatar_512_jpeg", "output_1024_png"):
        items = batch[kind]
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, count, cores):
            await asyncio.gather(
                *(
                    classifier.classify_image(
                        items[(start + i) % len(items)], "image/png", Surface.OUTPUT
                    )
                    for i in range(min(cores, count - start))
                )
            )
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        result[kind] = {
            "images": count,
            "images_per_second_wall": round(count / wall, 2),
            "images_per_cpu_second": round(count / cpu, 2),
        }
    return result


# --- submissions -------------------------------------------------------------------


async def seeded(factory: UnitOfWorkFactory, n_rules: int, user: uuid.UUID) -> None:
    async with factory() as uow:
        for rule in rules(n_rules):
            await uow.moderation.add_rule(msgspec.structs.replace(rule, id=uuid.uuid4()))
        await uow.commit()
    await grant_credits(
        factory,
        user_id=user,
        amount=1_000_000,
        reference="bench",
        idempotency_key=str(uuid.uuid4()),
        now=datetime.now(UTC),
    )


async def submissions(factory: UnitOfWorkFactory, count: int, edits: int) -> dict[str, Any]:
    """``submit_image`` (and ``submit_edit``) one after another, with and without
    moderation, alternating in rounds of 50 so that both meet the same load."""
    clock, queue, storage = SystemClock(), InMemoryJobQueue(), InMemoryStorage()
    user = uuid.uuid4()
    await seeded(factory, 100, user)
    rules_only: list[Classifier] = [RuleListClassifier(factory, clock, refresh_seconds=60)]
    with_images: list[Classifier] = [*rules_only, NudeNetClassifier()]
    moderated_text = Moderation(factory, clock, rules_only)
    moderated_all = Moderation(factory, clock, with_images)
    prompts = texts(count)["prompt"]
    inspector = PillowImageInspector()
    picture = encoded(data.chelsea(), 512, "PNG")  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    Image.new("L", (512, 512), 255).save(out, "PNG")
    mask = out.getvalue()

    async def image(n: int, moderation: Moderation | None) -> None:
        params = ImageParams(prompt=prompts[n % len(prompts)], width=512, height=512)
        await submit_image(
            factory,
            queue,
            clock,
            DEFAULT_CATALOG,
            user_id=user,
            email=None,
            model_id="flux-schnell",
            params=params,
            idempotency_key=str(uuid.uuid4()),
            request_hash=uuid.uuid4().hex,
            moderation=moderation,
        )

    async def edit(n: int, moderation: Moderation | None) -> None:
        await submit_edit(
            factory,
            queue,
            clock,
            DEFAULT_CATALOG,
            storage,
            inspector,
            user_id=user,
            email=None,
            model_id="sdxl-inpaint",
            prompt=prompts[n % len(prompts)],
            image=Upload(picture, "image/png"),
            mask=Upload(mask, "image/png"),
            idempotency_key=str(uuid.uuid4()),
            request_hash=uuid.uuid4().hex,
            moderation=moderation,
        )

    await image(0, moderated_all)  # warm: rules loaded, NudeNet's model read
    await edit(0, moderated_all)
    runs: dict[str, list[float]] = {"image_off": [], "image_on": [], "edit_off": [], "edit_on": []}
    for start in range(0, count, 50):
        n = min(50, count - start)
        runs["image_off"] += await timed_async(lambda i: image(i, None), n)
        runs["image_on"] += await timed_async(lambda i: image(i, moderated_text), n)
    for start in range(0, edits, 10):
        n = min(10, edits - start)
        runs["edit_off"] += await timed_async(lambda i: edit(i, None), n)
        runs["edit_on"] += await timed_async(lambda i: edit(i, moderated_all), n)
    result: dict[str, Any] = {k: summary(v) for k, v in runs.items()}
    for kind in ("image", "edit"):
        on, off = result[f"{kind}_on"], result[f"{kind}_off"]
        result[f"{kind}_added"] = {
            "p50_ms": round(on["p50_ms"] - off["p50_ms"], 3),
            "p99_ms": round(on["p99_ms"] - off["p99_ms"], 3),
        }
    return result


async def on_postgres(count: int, edits: int) -> dict[str, Any]:
    from genstudio.adapters.supabase.db import make_engine
    from genstudio.adapters.supabase.migrate import upgrade
    from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
    from tests import servers

    server = servers.pg_server()
    name = f"genstudio_bench_moderation_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{server}/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url, pool_size=4)
        try:
            return await submissions(SqlUnitOfWorkFactory(engine), count, edits)
        finally:
            await engine.dispose()
    finally:
        with psycopg.connect(f"{server}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--submissions", type=int, default=300)
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    load_before, uptime_before = os.getloadavg(), uptime()
    batch = images()
    result: dict[str, Any] = {
        "benchmark": "moderation",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "texts": bench_texts(args.texts),
        "images_per_core": bench_images_per_core(batch, args.images),
        "images_concurrent": asyncio.run(bench_images_concurrent(batch, args.images)),
    }
    if not args.no_postgres:
        result["submissions"] = asyncio.run(on_postgres(args.submissions, args.edits))
    load_after = os.getloadavg()
    result["machine"] = {
        "cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "load_average_1m": [round(load_before[0], 2), round(load_after[0], 2)],
        "uptime": [uptime_before, uptime()],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
