"""Edit and video end to end on the embedded default, as processes: `genstudio serve`
with nothing configured (embedded Postgres, in-process worker, gpu_local, local files),
driven over HTTP like the app does, results downloaded through their signed URLs."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import av
import httpx
import pytest
from PIL import Image, ImageDraw

from tests.e2e.conftest import Service, until_stopped

pytestmark = pytest.mark.e2e


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def picture(width: int, height: int, colour: tuple[int, int, int]) -> Image.Image:
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    ImageDraw.Draw(image).ellipse((width // 8, height // 8, width // 2, height // 2), fill=colour)
    return image


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("embedded-modes")
    env = {"GENSTUDIO_DATA_DIR": str(tmp / "data"), "GENSTUDIO_POLL_INTERVAL": "0.05"}
    for var in ("DATABASE_URL", "REDIS_URL", "SUPABASE_JWT_SECRET"):
        env[var] = ""
    svc = Service(env, tmp)
    svc.start("api", "serve")
    try:
        svc.wait_ready(timeout=120)
        yield svc
    finally:
        svc.stop_all()
    assert until_stopped(tmp.resolve() / "data" / "pg") == []  # stopped with the API


def client_for(service: Service, credits: int) -> httpx.Client:
    user = uuid.uuid4()
    token = service.cli("token", "--user", str(user))
    service.cli("credits", "grant", str(user), str(credits))
    return httpx.Client(
        base_url=service.base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def finish(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/generate/{job_id}").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            assert body["status"] == "succeeded", body
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_an_edit_changes_only_the_masked_pixels(embedded: Service) -> None:
    original = picture(320, 240, (230, 60, 40))
    mask = Image.new("L", (320, 240), 0)
    ImageDraw.Draw(mask).rectangle((100, 60, 219, 179), fill=255)
    with client_for(embedded, 5) as client:
        created = client.post(
            "/v1/generate/edit",
            data={"model": "sdxl-inpaint", "prompt": "a blue door", "seed": "4"},
            files={
                "image": ("photo.png", encode(original), "image/png"),
                "mask": ("mask.png", encode(mask), "image/png"),
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert created.status_code == 202, created.text
        assert created.json()["cost"] == 1
        done = finish(client, created.json()["id"])
        [asset] = done["assets"]
        result = Image.open(io.BytesIO(httpx.get(asset["url"], timeout=30).content))
        assert result.size == (320, 240)
        outside = mask.point(lambda v: 255 - v)
        rgb = result.convert("RGB")
        assert Image.composite(rgb, original, outside).tobytes() == original.tobytes()
        assert (
            rgb.crop((100, 60, 220, 180)).tobytes() != original.crop((100, 60, 220, 180)).tobytes()
        )
        assert client.get("/v1/me").json()["credits"] == 4


@pytest.mark.parametrize(
    ("input_type", "seconds", "fps"), [("text", 2, 12), ("image", 1, 16), ("keyframes", 3, 8)]
)
def test_a_video_of_each_input_type_is_a_valid_mp4_of_the_asked_duration(
    embedded: Service, input_type: str, seconds: int, fps: int
) -> None:
    red, blue = picture(640, 360, (240, 20, 20)), picture(640, 360, (20, 40, 240))
    files = {
        "text": {},
        "image": {"image": ("still.jpg", encode(red, "JPEG"), "image/jpeg")},
        "keyframes": {
            "firstFrame": ("first.png", encode(red), "image/png"),
            "lastFrame": ("last.png", encode(blue), "image/png"),
        },
    }[input_type]
    fields = {
        "model": "wan-2.1",
        "inputType": input_type,
        "prompt": "a lighthouse in a storm",
        "durationSeconds": str(seconds),
        "fps": str(fps),
        "resolution": "480p",
    }
    with client_for(embedded, 20) as client:
        key = {"Idempotency-Key": str(uuid.uuid4())}
        if files:
            created = client.post("/v1/generate/video", data=fields, files=files, headers=key)
        else:  # httpx sends a field-only form urlencoded; the app sends multipart
            body, content_type = multipart(fields)
            created = client.post(
                "/v1/generate/video", content=body, headers=key | {"Content-Type": content_type}
            )
        assert created.status_code == 202, created.text
        assert created.json()["cost"] == 5 * seconds
        done = finish(client, created.json()["id"])
        [asset] = done["assets"]
        assert asset["durationSeconds"] == seconds
        video = httpx.get(asset["url"], timeout=30)
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        with av.open(io.BytesIO(video.content), "r") as container:
            stream = container.streams.video[0]
            # PyAV's stub leaves VideoFrame.to_image unannotated
            frames = [f.to_image() for f in container.decode(stream)]  # type: ignore[no-untyped-call]
            assert stream.codec_context.name == "h264"
            assert stream.average_rate == fps
            assert stream.duration is not None and stream.time_base is not None
            assert float(stream.duration * stream.time_base) == pytest.approx(seconds)
        assert len(frames) == seconds * fps
        assert {f.size for f in frames} == {(854, 480)}
        poster = httpx.get(asset["thumbnailUrl"], timeout=30)
        assert poster.headers["content-type"] == "image/png"
        if input_type != "text":
            first = frames[0].convert("RGB")
            reference = red.resize((854, 480))
            diff = sum(
                abs(a - b)
                for a, b in zip(first.tobytes()[::97], reference.tobytes()[::97], strict=False)
            )
            assert diff / len(first.tobytes()[::97]) < 12, "the video starts on the uploaded image"
        if input_type == "keyframes":
            last = frames[-1].convert("RGB").resize((1, 1)).getpixel((0, 0))
            assert last[2] > last[0], "and ends on the last frame (blue)"
