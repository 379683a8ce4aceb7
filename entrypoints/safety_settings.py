"""Trust-and-safety settings: ``GENSTUDIO_REPORTS_TO_HIDE``."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from genstudio.core.model.safety import REPORTS_TO_HIDE


class SafetySettings(msgspec.Struct, frozen=True, kw_only=True):
    #: distinct users whose open reports hide a post pending review
    reports_to_hide: int = REPORTS_TO_HIDE


def safety_settings_from_env(env: Mapping[str, str]) -> SafetySettings:
    """A value that is not a whole number of at least 1 stops the process."""
    raw = env.get("GENSTUDIO_REPORTS_TO_HIDE", "").strip()
    if not raw:
        return SafetySettings()
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"GENSTUDIO_REPORTS_TO_HIDE must be a whole number >= 1, not {raw!r}")
    return SafetySettings(reports_to_hide=int(raw))
