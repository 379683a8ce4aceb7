"""NudeNet's detector behind the Classifier port.

The detector finds body parts (exposed or covered) with a score each; the exposed
sexual ones become a ``sexual`` label scored by the strongest detection. Whether that
refuses is the policy's call, per surface. Inference runs on onnxruntime's CPU
provider with one thread per call (``asyncio.to_thread``): concurrent images use the
cores side by side instead of fighting over them, and the event loop never waits.

NudeNet sees nudity only: sexual content of minors, violence or hate in an image need
another layer (the external model); texts it does not read.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
import threading
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from genstudio.core.model.moderation import Classification, Label, Reason, Surface
from genstudio.ports.moderation import ModerationUnavailable, UnreadableImage

if TYPE_CHECKING:
    import numpy as np

#: the detections that count as sexual content (NudeNet 3.4's class names)
SEXUAL_PARTS = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "ANUS_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
    }
)
#: decoding bombs: refuse to decode more pixels than this (a 50 MP output is plenty)
MAX_PIXELS = 50_000_000


def available() -> bool:
    """Whether nudenet (and onnxruntime) are installed: the embedded default adds this
    layer only then."""
    return all(importlib.util.find_spec(m) is not None for m in ("nudenet", "onnxruntime"))


class NudeNetClassifier:
    name = "nudenet"

    def __init__(self, *, threads_per_call: int = 1, parts: frozenset[str] = SEXUAL_PARTS) -> None:
        """``parts``: the detector's classes that count as sexual content."""
        self.threads_per_call = threads_per_call
        self.parts = parts
        self._detector: Any = None
        self._lock = threading.Lock()

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        return Classification()  # images only

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        return await asyncio.to_thread(self.classify_sync, data)

    def classify_sync(self, data: bytes) -> Classification:
        """The verdict on one image, on the calling thread (the benchmark calls it)."""
        pixels = _decoded(data)
        detections = self._loaded().detect(pixels)
        scores = [float(d["score"]) for d in detections if d["class"] in self.parts]
        if not scores:
            return Classification()
        return Classification((Label(Reason.SEXUAL, min(1.0, max(scores)), self.name),))

    def _loaded(self) -> Any:
        """The detector, made once (its model read from the wheel) on first use."""
        with self._lock:
            if self._detector is None:
                try:
                    import nudenet  # type: ignore[import-untyped]
                    import onnxruntime  # type: ignore[import-untyped]
                except ImportError as exc:
                    raise ModerationUnavailable("nudenet is not installed") from exc
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = self.threads_per_call
                options.inter_op_num_threads = 1
                model = os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")
                # NudeDetector's own constructor makes a session with default options
                # (every core, ~14 MiB more kept): its attributes are set here instead,
                # over the same model with bounded threads; the contract tests run
                # detect() through it, so a nudenet release that changes them fails there
                detector = object.__new__(nudenet.NudeDetector)
                detector.onnx_session = onnxruntime.InferenceSession(
                    model, sess_options=options, providers=["CPUExecutionProvider"]
                )
                detector.input_width = detector.input_height = 320
                detector.input_name = detector.onnx_session.get_inputs()[0].name
                self._detector = detector
            return self._detector


def _decoded(data: bytes) -> np.ndarray[Any, Any]:
    """BGR pixels (what NudeNet's OpenCV preprocessing expects) of any image Pillow
    reads, in colour. Raises UnreadableImage for bytes that are not an image."""
    import numpy as np  # with the first image: a process that classifies none never loads it

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise UnreadableImage("the image is too large to classify")
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableImage(f"the image could not be decoded: {exc}") from exc
    return np.ascontiguousarray(rgb[:, :, ::-1])
