"""Wiring for moderation (issue #19): the classifiers the operator configured, cheapest
first, behind one ``Moderation`` use case per process."""

from __future__ import annotations

import logging

from genstudio.adapters import nudenet
from genstudio.adapters.imaging.frames import PyAvFrameSampler
from genstudio.adapters.openai_moderation import OpenAIModerationClassifier
from genstudio.core.services.moderation.rules import RuleListClassifier
from genstudio.core.services.moderation.service import Moderation
from genstudio.entrypoints.settings import Settings
from genstudio.ports.clock import Clock
from genstudio.ports.moderation import Classifier
from genstudio.ports.unit_of_work import UnitOfWorkFactory
from genstudio.ports.video import FrameSampler

log = logging.getLogger("genstudio.moderation")


def build_moderation(
    settings: Settings, uow_factory: UnitOfWorkFactory, clock: Clock
) -> Moderation:
    """The operator's rule list always (texts; from the database, reloaded every
    ``GENSTUDIO_MODERATION_RULES_RELOAD`` seconds); NudeNet for images unless
    ``GENSTUDIO_MODERATION_IMAGES`` is ``off``: asked of ``genstudio classifier`` at
    ``GENSTUDIO_CLASSIFIER_URL`` when set, else on this process's CPUs when it is
    installed (its model from the wheel); OpenAI's moderation endpoint only when
    ``OPENAI_API_KEY`` is set (then ``remote``: the free checks go first)."""
    m = settings.moderation
    classifiers: list[Classifier] = [
        RuleListClassifier(uow_factory, clock, refresh_seconds=m.rules_reload)
    ]
    frames: FrameSampler | None = None
    if m.images == "nudenet" and m.classifier_url is not None:
        from genstudio.adapters.classifier_service import ClassifierServiceClient

        classifiers.append(
            ClassifierServiceClient(
                m.classifier_url, token=m.classifier_token, timeout=m.classifier_timeout
            )
        )
        frames = PyAvFrameSampler()
    elif m.images == "nudenet":
        if nudenet.available():
            classifiers.append(nudenet.NudeNetClassifier())
            frames = PyAvFrameSampler()  # a video's frames, not only its poster
        else:
            log.warning("nudenet is not installed: generated images are not classified locally")
    if m.openai_api_key:
        classifiers.append(OpenAIModerationClassifier(m.openai_api_key, base_url=m.openai_base_url))
    return Moderation(
        uow_factory,
        clock,
        classifiers,
        policy=m.policy,
        remote=m.openai_api_key is not None,
        fail_closed=m.fail_closed,
        frames=frames,
    )
