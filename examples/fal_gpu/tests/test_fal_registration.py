"""GPU_PROVIDERS=...,fal finds this package through its entry point; its factory reads
the FAL_* variables genstudio hands it, refusing what is missing or malformed."""

from __future__ import annotations

import importlib.metadata

import pytest
from genstudio.entrypoints.gpus import build_gpus, build_router
from genstudio.entrypoints.settings import Settings
from genstudio.ports.gpu import GpuProvider

from genstudio_fal import FalProvider, from_settings, parse_models


def test_the_package_registers_fal_under_genstudio_s_gpu_providers_group() -> None:
    [entry] = [
        e
        for e in importlib.metadata.entry_points(group="genstudio.gpu_providers")
        if e.name == "fal"
    ]
    assert entry.value == "genstudio_fal:from_settings"
    assert entry.load() is from_settings


async def test_gpu_providers_makes_fal_modal_s_failover_from_the_fal_variables() -> None:
    settings = Settings.from_env(
        {
            "GPU_PROVIDERS": "modal,fal",
            "MODAL_BASE_URL": "http://modal.test",
            "MODAL_TOKEN_ID": "i",
            "MODAL_TOKEN_SECRET": "s",
            "FAL_KEY": "fal-key",
            "FAL_QUEUE_URL": "http://fal.test",
            "FAL_MODELS": "flux-schnell=fal-ai/flux/schnell,*=fal-ai/flux/dev",
            "GENSTUDIO_GPU_TIMEOUT": "7",
        }
    )

    def no_local() -> GpuProvider:
        raise AssertionError("the CPU renderer is not chosen")

    gpus = build_gpus(settings, no_local)
    try:
        assert list(gpus) == ["modal", "fal"]
        assert build_router(settings, gpus).preferences("flux-schnell") == ("modal", "fal")
        fal = gpus["fal"]
        assert isinstance(fal, FalProvider)
        assert (fal.queue_url, fal.timeout) == ("http://fal.test", 7.0)
        assert fal.models == {
            "black-forest-labs/FLUX.1-schnell": "fal-ai/flux/schnell",
            "*": "fal-ai/flux/dev",
        }
    finally:
        for gpu in gpus.values():
            await gpu.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "GPU_PROVIDERS names fal, which needs FAL_KEY"),
        ({"FAL_KEY": "k", "FAL_RATE_LIMIT": "fast"}, "FAL_RATE_LIMIT must be a number"),
        ({"FAL_KEY": "k", "FAL_RATE_LIMIT": "-1"}, "FAL_RATE_LIMIT must be positive"),
        ({"FAL_KEY": "k", "FAL_MODELS": "flux-schnell"}, "expected model=owner/app"),
        ({"FAL_KEY": "k", "FAL_MODELS": "*=flux"}, "expected model=owner/app"),
        ({"FAL_KEY": "k", "FAL_MODELS": "*=a/b,*=c/d"}, "'\\*' is listed twice"),
        ({"FAL_KEY": "k", "FAL_MODELS": " , "}, "FAL_MODELS names no model"),
    ],
)
def test_missing_or_malformed_variables_stop_the_process_naming_them(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SystemExit, match=message):
        from_settings(Settings(), env)


def test_catalog_ids_in_fal_models_become_provider_model_names() -> None:
    assert parse_models("sdxl=fal-ai/fast-sdxl, other/model=o/a/b") == {
        "stabilityai/stable-diffusion-xl-base-1.0": "fal-ai/fast-sdxl",
        "other/model": "o/a/b",
    }
