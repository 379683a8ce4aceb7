"""Uploaded pictures with Pillow (and pillow-heif for iPhone HEIC): ``ports.imaging``."""

from adapters.imaging.inspector import PillowImageInspector, sniff_image_type

__all__ = ["PillowImageInspector", "sniff_image_type"]
