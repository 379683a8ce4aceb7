"""Training photo settings: ``GENSTUDIO_PHOTO_*`` environment variables."""

from __future__ import annotations

import msgspec

from genstudio.core.model.training.photos import PhotoLimits, PhotoThresholds


class PhotoSettings(msgspec.Struct, frozen=True, kw_only=True):
    thresholds: PhotoThresholds = msgspec.field(default_factory=PhotoThresholds)
    limits: PhotoLimits = msgspec.field(default_factory=PhotoLimits)
    stored_side: int = 1536  # the stored copy's long side at most, in pixels


#: variable suffix -> (section, field); every threshold and limit is one variable
_NAMES = {
    **{f.name.upper(): ("thresholds", f.name) for f in msgspec.structs.fields(PhotoThresholds)},
    "MAX_PER_SET": ("limits", "max_photos_per_set"),
    "MAX_SETS": ("limits", "max_sets_per_user"),
}


def photo_settings_from_env(env: dict[str, str]) -> PhotoSettings:
    """``GENSTUDIO_PHOTO_MIN_SIDE``, ``..._MIN_SHARPNESS``, ``..._MIN_MEAN_LUMINANCE``,
    ``..._MAX_MEAN_LUMINANCE``, ``..._MAX_DARK_CLIPPED``, ``..._MAX_BRIGHT_CLIPPED``,
    ``..._MIN_FACE_FRACTION``, ``..._SECOND_FACE_RATIO``, ``..._DUPLICATE_DISTANCE``,
    ``..._MAX_PER_SET``, ``..._MAX_SETS``, ``..._STORED_SIDE``; unset keeps the default.
    A value that is not a number, or thresholds that make no sense, stop the process."""
    sections: dict[str, dict[str, float]] = {"thresholds": {}, "limits": {}}
    stored_side = 1536
    for suffix, (section, name) in _NAMES.items():
        raw = env.get(f"GENSTUDIO_PHOTO_{suffix}", "").strip()
        if raw:
            sections[section][name] = _number(f"GENSTUDIO_PHOTO_{suffix}", raw)
    raw = env.get("GENSTUDIO_PHOTO_STORED_SIDE", "").strip()
    if raw:
        stored_side = int(_number("GENSTUDIO_PHOTO_STORED_SIDE", raw))
    try:
        thresholds = msgspec.convert(sections["thresholds"], PhotoThresholds, strict=False)
        limits = msgspec.convert(sections["limits"], PhotoLimits, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise SystemExit(f"GENSTUDIO_PHOTO_*: {exc}") from None
    if stored_side < 512 or min(limits.max_photos_per_set, limits.max_sets_per_user) < 1:
        raise SystemExit("GENSTUDIO_PHOTO_STORED_SIDE must be >= 512 and the limits >= 1")
    return PhotoSettings(thresholds=thresholds, limits=limits, stored_side=stored_side)


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {raw!r}") from None
    return int(value) if value.is_integer() else value
