"""Our GPU worker (gpu_worker/) as the GPU contract tests reach it, once per session:
Runpod's platform with the Runpod handler behind it (a worker process, a few seconds
to start), and the Modal app's endpoints served locally."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.standins.modal_worker import ModalWorkerStandin
from tests.standins.runpod_worker import RunpodWorkerStandin

RUNPOD_KEY = "rp-key-for-tests"
MODAL_ID, MODAL_SECRET = "wk-tests", "ws-tests"


@pytest.fixture(scope="session")
def runpod_worker() -> Iterator[RunpodWorkerStandin]:
    """Runpod's platform with gpu_worker's Runpod handler behind it."""
    standin = RunpodWorkerStandin(api_key=RUNPOD_KEY, endpoints={"ep-flux", "ep-sdxl"})
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def modal_worker() -> Iterator[ModalWorkerStandin]:
    """gpu_worker's Modal endpoints served locally, behind Modal's edge."""
    standin = ModalWorkerStandin(token_id=MODAL_ID, token_secret=MODAL_SECRET)
    standin.start()
    yield standin
    standin.stop()
