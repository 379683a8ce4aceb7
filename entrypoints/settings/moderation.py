"""Moderation settings (issue #19): ``GENSTUDIO_MODERATION_*`` and OpenAI's moderation
endpoint (``OPENAI_API_KEY``, ``OPENAI_MODERATION_BASE_URL``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

import msgspec

from genstudio.core.model.moderation import ModerationPolicy, policy_from
from genstudio.entrypoints.settings.env import Env

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"


class ModerationSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The operator's rule list always runs; NudeNet (local, CPU) checks images unless
    turned off; OpenAI's endpoint only with an ``OPENAI_API_KEY``: no text or image
    goes to a service the operator did not configure."""

    PREFIXES: ClassVar[tuple[str, ...]] = (
        "GENSTUDIO_MODERATION_",
        "GENSTUDIO_CLASSIFIER_",
        "OPENAI_",
    )

    #: the default thresholds with GENSTUDIO_MODERATION_THRESHOLDS' overrides
    #: (``sexual=0.7,avatar.sexual=0.4``)
    policy: ModerationPolicy = msgspec.field(default_factory=ModerationPolicy)
    #: a classifier that cannot answer refuses the content instead of being skipped
    fail_closed: bool = False
    #: seconds between checks that the operator's rule list changed
    rules_reload: float = 10.0
    images: Literal["nudenet", "off"] = "nudenet"
    #: ``genstudio classifier``'s address: images are classified there (NudeNet in one
    #: process per host) instead of in this process
    classifier_url: str | None = None
    #: the bearer that service asks for (its GENSTUDIO_CLASSIFIER_TOKEN)
    classifier_token: str | None = None
    #: seconds one image may take there, the wait for a free turn included
    classifier_timeout: float = 10.0
    openai_api_key: str | None = None
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModerationSettings:
        e = Env(env)
        try:
            policy = policy_from(e.text("GENSTUDIO_MODERATION_THRESHOLDS", ""))
        except ValueError as exc:
            raise SystemExit(f"GENSTUDIO_MODERATION_THRESHOLDS: {exc}") from None
        images = e.text("GENSTUDIO_MODERATION_IMAGES", "nudenet").lower()
        if images not in ("nudenet", "off"):
            raise SystemExit(f"GENSTUDIO_MODERATION_IMAGES must be nudenet or off, not {images!r}")
        reload = e.number("GENSTUDIO_MODERATION_RULES_RELOAD", 10.0)
        if reload <= 0:
            raise SystemExit("GENSTUDIO_MODERATION_RULES_RELOAD must be a positive number")
        timeout = e.number("GENSTUDIO_CLASSIFIER_TIMEOUT", 10.0)
        if timeout <= 0:
            raise SystemExit("GENSTUDIO_CLASSIFIER_TIMEOUT must be a positive number of seconds")
        classifier_url = e.opt("GENSTUDIO_CLASSIFIER_URL")
        if classifier_url is not None and not classifier_url.startswith(("http://", "https://")):
            raise SystemExit(
                f"GENSTUDIO_CLASSIFIER_URL must be an http(s) URL, not {classifier_url!r}"
            )
        return cls(
            policy=policy,
            fail_closed=e.switch("GENSTUDIO_MODERATION_FAIL_CLOSED", False),
            rules_reload=reload,
            images="nudenet" if images == "nudenet" else "off",
            classifier_url=classifier_url,
            classifier_token=e.opt("GENSTUDIO_CLASSIFIER_TOKEN"),
            classifier_timeout=timeout,
            openai_api_key=e.opt("OPENAI_API_KEY"),
            openai_base_url=e.text("OPENAI_MODERATION_BASE_URL", DEFAULT_OPENAI_BASE_URL),
        )
