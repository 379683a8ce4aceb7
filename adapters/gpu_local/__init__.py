"""The embedded default's GPU: a CPU *preview* renderer, not a diffusion model.

``render_png`` draws a deterministic picture from a prompt (a gradient, shapes coloured
by the prompt's words, and a "PREVIEW RENDERER" label with the prompt's start), so the
whole product runs end to end with real PNG files and no GPU. ``LocalGpuProvider``
serves it through the ``GpuProvider`` port, in this process only. ``render_edit`` paints
that pattern through an inpainting mask (and only there); ``render_video`` makes a real
H.264 MP4 with PyAV from text, one image or two keyframes.
"""

from genstudio.adapters.gpu_local.provider import LocalGpuProvider
from genstudio.adapters.gpu_local.renderer import render_edit, render_png
from genstudio.adapters.gpu_local.video import render_video

__all__ = ["LocalGpuProvider", "render_edit", "render_png", "render_video"]
