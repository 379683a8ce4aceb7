"""What a worker never uses is not loaded with it (issue #20, worker memory): HEIF
decoding, Alembic, PostHog's SDK, PyAV and NudeNet come with their first use. Each
check runs in a fresh interpreter, where nothing else imported them first."""

from __future__ import annotations

import io
import subprocess
import sys

import pillow_heif
from PIL import Image


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_a_worker_process_loads_none_of_them() -> None:
    loaded = run(
        "import sys\n"
        "from genstudio.entrypoints import worker, moderation, analytics\n"
        "from genstudio.entrypoints.settings import Settings\n"
        "from genstudio.adapters import imaging, supabase, posthog, nudenet\n"
        "from genstudio.adapters.imaging import frames\n"
        "Settings.from_env({})\n"
        "heavy = ('pillow_heif', 'alembic', 'mako', 'posthog', 'requests', 'av', 'onnxruntime', 'cv2')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    assert loaded == "[]"


def test_a_heic_upload_is_read_without_registering_heif_first() -> None:
    heif = pillow_heif.from_pillow(Image.new("RGB", (96, 64), (200, 40, 40)))
    out = io.BytesIO()
    heif.save(out, quality=90)
    answer = run(
        "import asyncio, sys\n"
        "from genstudio.adapters.imaging import PillowImageInspector\n"
        "assert 'pillow_heif' not in sys.modules\n"
        f"image = asyncio.run(PillowImageInspector().inspect({out.getvalue()!r}, 'image/heic', field='image'))\n"
        "print(image.width, image.height, image.source_type)"
    )
    assert answer == "96 64 image/heic"
