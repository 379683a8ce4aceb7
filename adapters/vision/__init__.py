"""Photo analysis with OpenCV (Haar face cascade, Laplacian), Pillow and imagehash."""

from adapters.vision.analyser import OpenCvPhotoAnalyser

__all__ = ["OpenCvPhotoAnalyser"]
