"""Which classifiers the service runs, from its settings (issue #19): the rule list
always, NudeNet unless turned off (in this process, or in ``genstudio classifier`` at
GENSTUDIO_CLASSIFIER_URL), OpenAI only with a key; bad values stop the process."""

from __future__ import annotations

import pytest

from genstudio.adapters.classifier_service import ClassifierServiceClient
from genstudio.adapters.memory import FakeClock, InMemoryUnitOfWorkFactory
from genstudio.core.model.moderation import Reason, Surface
from genstudio.entrypoints.check import Level, problems
from genstudio.entrypoints.moderation import build_moderation
from genstudio.entrypoints.settings import Settings


def names(env: dict[str, str]) -> tuple[list[str], bool]:
    moderation = build_moderation(Settings.from_env(env), InMemoryUnitOfWorkFactory(), FakeClock())
    return [c.name for c in moderation.classifiers], moderation.remote


def test_the_default_runs_the_rules_and_nudenet_and_sends_nothing_out() -> None:
    assert names({}) == (["rules", "nudenet"], False)


def test_openai_is_asked_only_with_a_key_and_images_can_be_left_to_it() -> None:
    env = {"OPENAI_API_KEY": "sk-x", "GENSTUDIO_MODERATION_IMAGES": "off"}
    assert names(env) == (["rules", "openai"], True)
    assert names({"OPENAI_MODERATION_BASE_URL": "http://127.0.0.1:1/v1"}) == (
        ["rules", "nudenet"],
        False,
    )


def test_with_a_classifier_service_images_go_there_and_no_model_is_loaded_here() -> None:
    env = {"GENSTUDIO_CLASSIFIER_URL": "http://classifier:8010", "GENSTUDIO_CLASSIFIER_TOKEN": "t"}
    moderation = build_moderation(Settings.from_env(env), InMemoryUnitOfWorkFactory(), FakeClock())
    service = moderation.classifiers[-1]
    assert [c.name for c in moderation.classifiers] == ["rules", "classifier-service"]
    assert isinstance(service, ClassifierServiceClient)
    assert service.url == "http://classifier:8010/v1/classify/image"
    assert moderation.frames is not None  # videos' frames still sampled here, then sent
    assert not moderation.remote  # a service of the operator's own: not a paid one
    # turned off, the service is not asked either
    assert names({**env, "GENSTUDIO_MODERATION_IMAGES": "off"}) == (["rules"], False)


def test_check_warns_of_a_classifier_service_without_a_token_or_without_effect() -> None:
    found = problems(
        Settings.from_env(env := {"GENSTUDIO_CLASSIFIER_URL": "http://gpu-box:8010"}), env
    )
    assert [p.variables for p in found] == [
        ("GENSTUDIO_CLASSIFIER_URL", "GENSTUDIO_CLASSIFIER_TOKEN")
    ]
    assert all(p.level is Level.WARNING for p in found)
    local = {"GENSTUDIO_CLASSIFIER_URL": "http://127.0.0.1:8010"}
    assert problems(Settings.from_env(local), local) == []
    off = {**local, "GENSTUDIO_MODERATION_IMAGES": "off"}
    assert [p.variables for p in problems(Settings.from_env(off), off)] == [
        ("GENSTUDIO_CLASSIFIER_URL", "GENSTUDIO_MODERATION_IMAGES")
    ]


def test_thresholds_fail_closed_and_reload_come_from_the_environment() -> None:
    s = Settings.from_env(
        {
            "GENSTUDIO_MODERATION_THRESHOLDS": "hate=0.5,avatar.sexual=0.3",
            "GENSTUDIO_MODERATION_FAIL_CLOSED": "on",
            "GENSTUDIO_MODERATION_RULES_RELOAD": "2.5",
        }
    ).moderation
    assert s.policy.threshold(Surface.PROMPT, Reason.HATE) == 0.5
    assert s.policy.threshold(Surface.AVATAR, Reason.SEXUAL) == 0.3
    assert s.policy.threshold(Surface.OUTPUT, Reason.SEXUAL) == 0.6  # a default kept
    assert (s.fail_closed, s.rules_reload) == (True, 2.5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GENSTUDIO_MODERATION_THRESHOLDS", "hate=2"),
        ("GENSTUDIO_MODERATION_THRESHOLDS", "nonsense=0.5"),
        ("GENSTUDIO_MODERATION_IMAGES", "opencv"),
        ("GENSTUDIO_MODERATION_RULES_RELOAD", "0"),
        ("GENSTUDIO_MODERATION_FAIL_CLOSED", "maybe"),
        ("GENSTUDIO_CLASSIFIER_URL", "classifier:8010"),
        ("GENSTUDIO_CLASSIFIER_TIMEOUT", "0"),
    ],
)
def test_a_value_that_does_not_parse_stops_the_process_naming_it(name: str, value: str) -> None:
    with pytest.raises(SystemExit, match=name):
        Settings.from_env({name: value})
