"""GPU providers and media storage chosen by configuration (issue #23): GPU_PROVIDERS and
MEDIA_STORAGE name adapters found through entry points; unset, the choice is what it
always was. Outside adapters here are real installed distributions (a dist-info on
sys.path), found by importlib.metadata as pip-installed ones are."""

from __future__ import annotations

import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from genstudio.adapters.gpu_local import LocalGpuProvider
from genstudio.adapters.gpu_modal import ModalProvider
from genstudio.adapters.gpu_runpod import RunpodProvider
from genstudio.adapters.local_storage import LocalFileStorage
from genstudio.adapters.memory.gpu import InMemoryGpuProvider
from genstudio.adapters.supabase_storage import SupabaseStorage
from genstudio.entrypoints import plugins
from genstudio.entrypoints.check import describe
from genstudio.entrypoints.containers import MediaContainer
from genstudio.entrypoints.gpus import build_gpus, build_router
from genstudio.entrypoints.settings import Settings, resolve_secrets
from genstudio.ports.gpu import GpuProvider

ROOT = Path(__file__).resolve().parents[2]
MODAL = {"MODAL_BASE_URL": "http://modal.test", "MODAL_TOKEN_ID": "i", "MODAL_TOKEN_SECRET": "s"}
RUNPOD = {"RUNPOD_API_KEY": "rp", "RUNPOD_ENDPOINTS": "*=ep"}
SUPABASE = {"SUPABASE_URL": "http://supabase.test", "SUPABASE_SERVICE_KEY": "service"}


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """What is installed is read once a process; each test reads it afresh."""
    plugins.installed.cache_clear()
    yield
    plugins.installed.cache_clear()


def settings(tmp_path: Path, **env: str) -> Settings:
    return resolve_secrets(Settings.from_env({"GENSTUDIO_DATA_DIR": str(tmp_path), **env}))


def gpus(s: Settings) -> dict[str, GpuProvider]:
    return build_gpus(s, lambda: LocalGpuProvider())


def storage_of(s: Settings) -> object:
    return MediaContainer(settings=s).storage()


# -- unset: what genstudio always chose ---------------------------------------------------


def test_with_nothing_configured_the_cpu_renderer_renders_and_media_are_local_files(
    tmp_path: Path,
) -> None:
    s = settings(tmp_path)
    chosen = gpus(s)
    assert list(chosen) == ["local"] and isinstance(chosen["local"], LocalGpuProvider)
    storage = storage_of(s)
    assert isinstance(storage, LocalFileStorage)
    assert storage.root == (tmp_path / "media").absolute()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (MODAL, ["modal"]),
        (RUNPOD, ["runpod"]),
        ({**RUNPOD, **MODAL}, ["modal", "runpod"]),  # Modal primary, Runpod its fallback
    ],
)
def test_configured_providers_are_chosen_modal_first_as_always(
    tmp_path: Path, env: dict[str, str], expected: list[str]
) -> None:
    s = settings(tmp_path, **env)
    chosen = gpus(s)
    assert list(chosen) == expected
    assert list(build_router(s, chosen).preferences("flux-schnell")) == expected
    kinds = {"modal": ModalProvider, "runpod": RunpodProvider}
    assert all(isinstance(chosen[n], kinds[n]) for n in expected)


def test_supabase_storage_when_supabase_is_configured(tmp_path: Path) -> None:
    assert isinstance(storage_of(settings(tmp_path, **SUPABASE)), SupabaseStorage)


def test_the_container_s_local_renderer_is_the_one_used_so_a_test_may_swap_it(
    tmp_path: Path,
) -> None:
    swapped = InMemoryGpuProvider()
    chosen = build_gpus(settings(tmp_path), lambda: swapped)
    assert chosen == {"memory": swapped}


# -- GPU_PROVIDERS and MEDIA_STORAGE ------------------------------------------------------


def test_gpu_providers_sets_the_failover_order(tmp_path: Path) -> None:
    s = settings(tmp_path, GPU_PROVIDERS="runpod, modal,local", **MODAL, **RUNPOD)
    chosen = gpus(s)
    assert list(chosen) == ["runpod", "modal", "local"]
    assert build_router(s, chosen).preferences("sdxl") == ("runpod", "modal", "local")


def test_gpu_providers_may_leave_out_a_configured_provider(tmp_path: Path) -> None:
    assert list(gpus(settings(tmp_path, GPU_PROVIDERS="runpod", **MODAL, **RUNPOD))) == ["runpod"]


def test_media_storage_may_choose_local_files_though_supabase_is_configured(
    tmp_path: Path,
) -> None:
    s = settings(tmp_path, MEDIA_STORAGE="local", **SUPABASE)
    assert isinstance(storage_of(s), LocalFileStorage)


def test_a_named_provider_without_its_settings_stops_the_process_naming_them(
    tmp_path: Path,
) -> None:
    s = settings(tmp_path, GPU_PROVIDERS="modal", MODAL_BASE_URL="http://modal.test")
    with pytest.raises(SystemExit, match="MODAL_TOKEN_ID, MODAL_TOKEN_SECRET unset"):
        gpus(s)
    with pytest.raises(SystemExit, match=r"MEDIA_STORAGE names supabase.*SUPABASE_SERVICE_KEY"):
        storage_of(settings(tmp_path, MEDIA_STORAGE="supabase", SUPABASE_URL="http://s.test"))


def test_an_unknown_provider_is_refused_when_the_settings_are_read_listing_the_installed(
    tmp_path: Path,
) -> None:
    with pytest.raises(SystemExit) as refused:
        Settings.from_env({"GPU_PROVIDERS": "modal,replicate"})
    message = str(refused.value)
    assert message.startswith("GPU_PROVIDERS names 'replicate', which is not installed")
    assert "installed GPU providers: " in message
    listed = message.partition("installed GPU providers: ")[2].partition(" (")[0].split(", ")
    assert {"local", "modal", "runpod"} <= set(listed)
    assert "genstudio.gpu_providers" in message


def test_an_unknown_storage_is_refused_listing_the_installed() -> None:
    with pytest.raises(SystemExit, match=r"MEDIA_STORAGE names 'gcs'.*: (.*, )?local, .*supabase"):
        Settings.from_env({"MEDIA_STORAGE": "gcs"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GPU_PROVIDERS": "modal,,runpod"}, "GPU_PROVIDERS: an empty name"),
        ({"GPU_PROVIDERS": "modal,runpod,modal"}, "GPU_PROVIDERS lists 'modal' twice"),
        ({"MEDIA_STORAGE": "local,supabase"}, "MEDIA_STORAGE names one storage, not 2"),
    ],
)
def test_malformed_lists_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        Settings.from_env(env)


def test_our_own_adapters_are_declared_in_pyproject_as_the_registry_knows_them() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        declared = tomllib.load(f)["project"]["entry-points"]
    for group, own in plugins.OWN.items():
        assert declared[group] == own, group
        for value in own.values():  # each names a real factory
            module, _, attr = value.partition(":")
            assert callable(getattr(__import__(module, fromlist=[attr]), attr))


# -- outside adapters: installed distributions --------------------------------------------


def install(site: Path, dist: str, module: str, entry_points: str, code: str) -> None:
    """A distribution as pip leaves it: the module and its dist-info."""
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


ACME = """
    from genstudio.adapters.memory.gpu import InMemoryGpuProvider
    from genstudio.adapters.memory.storage import InMemoryStorage

    seen = []

    def gpu(settings, env):
        seen.append(("gpu", dict(env)))
        return InMemoryGpuProvider(name="acme")

    def misnamed(settings, env):
        return InMemoryGpuProvider(name="something-else")

    def storage(settings, env):
        seen.append(("storage", dict(env)))
        return InMemoryStorage()
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in ("acme_adapters", "other_adapters", "broken_adapters"):
        sys.modules.pop(name, None)


def test_an_installed_package_adds_a_provider_and_a_storage_chosen_by_name(
    site: Path, tmp_path: Path
) -> None:
    install(
        site,
        "acme-adapters",
        "acme_adapters",
        """
        [genstudio.gpu_providers]
        acme = acme_adapters:gpu
        [genstudio.media_storage]
        acme-store = acme_adapters:storage
        """,
        ACME,
    )
    s = settings(
        tmp_path,
        GPU_PROVIDERS="acme,local",
        MEDIA_STORAGE="acme-store",
        ACME_TOKEN="t-1",
        ACME_STORE_BUCKET="b",
        ACMEX_OTHER="not acme's",
        MODAL_TOKEN_SECRET="not acme's either",
    )
    chosen = gpus(s)
    storage = storage_of(s)

    import acme_adapters  # type: ignore[import-not-found]

    assert list(chosen) == ["acme", "local"] and chosen["acme"].name == "acme"
    assert type(storage).__name__ == "InMemoryStorage"
    # each factory is handed its own prefix's variables and nothing else
    assert acme_adapters.seen == [
        ("gpu", {"ACME_TOKEN": "t-1"}),
        ("storage", {"ACME_STORE_BUCKET": "b"}),
    ]
    with pytest.raises(SystemExit) as refused:
        Settings.from_env({"GPU_PROVIDERS": "nope"})
    listed = str(refused.value).partition("installed GPU providers: ")[2].partition(" (")[0]
    assert {"acme", "local", "modal", "runpod"} <= set(listed.split(", "))


def test_genstudio_check_shows_an_outside_adapter_s_variables_secrets_masked(
    site: Path,
) -> None:
    install(
        site,
        "acme-adapters",
        "acme_adapters",
        "[genstudio.gpu_providers]\nacme = acme_adapters:gpu\n",
        ACME,
    )
    lines = {
        line.variable: line
        for line in describe(
            {"GPU_PROVIDERS": "acme", "ACME_API_KEY": "k-123", "ACME_REGION": "eu"}
        )
    }
    assert lines["GPU_PROVIDERS"].value == "acme"
    assert lines["ACME_API_KEY"].value == "****"
    assert (lines["ACME_REGION"].value, lines["ACME_REGION"].group) == ("eu", "adapters")


def test_two_packages_registering_one_name_stop_the_process_naming_both(site: Path) -> None:
    for dist, module in (("acme-adapters", "acme_adapters"), ("other-adapters", "other_adapters")):
        install(site, dist, module, f"[genstudio.gpu_providers]\nacme = {module}:gpu\n", ACME)
    with pytest.raises(SystemExit) as refused:
        Settings.from_env({"GPU_PROVIDERS": "acme"})
    message = str(refused.value)
    assert "two installed packages register the GPU provider 'acme'" in message
    assert "acme-adapters" in message and "other-adapters" in message


def test_a_provider_that_calls_itself_by_another_name_is_refused(
    site: Path, tmp_path: Path
) -> None:
    install(
        site,
        "acme-adapters",
        "acme_adapters",
        "[genstudio.gpu_providers]\nacme = acme_adapters:misnamed\n",
        ACME,
    )
    with pytest.raises(SystemExit, match="registered as 'acme' calls itself 'something-else'"):
        gpus(settings(tmp_path, GPU_PROVIDERS="acme"))


def test_a_package_that_cannot_be_imported_is_named_with_its_error(
    site: Path, tmp_path: Path
) -> None:
    install(
        site,
        "broken-adapters",
        "broken_adapters",
        "[genstudio.media_storage]\nbroken = broken_adapters:storage\n",
        "import a_module_nobody_installed\n",
    )
    with pytest.raises(
        SystemExit, match=r"storage 'broken' .* could not be loaded: ModuleNotFound"
    ):
        storage_of(settings(tmp_path, MEDIA_STORAGE="broken"))
