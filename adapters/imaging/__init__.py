"""Uploaded pictures with Pillow (and pillow-heif for iPhone HEIC): ``ports.imaging``."""

from genstudio.adapters.imaging.avatar import PillowAvatars
from genstudio.adapters.imaging.inspector import PillowImageInspector, sniff_image_type

__all__ = ["PillowAvatars", "PillowImageInspector", "sniff_image_type"]
