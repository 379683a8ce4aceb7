"""Photo analysis with OpenCV (Haar face cascade, Laplacian), Pillow and imagehash."""

from genstudio.adapters.vision.analyser import OpenCvPhotoAnalyser

__all__ = ["OpenCvPhotoAnalyser"]
