"""A local image classifier on CPU: NudeNet's detector, whose ONNX model ships in the
``nudenet`` wheel (``nudenet/320n.onnx``, checked in 3.4.2): nothing is downloaded."""

from genstudio.adapters.nudenet.classifier import NudeNetClassifier, available

__all__ = ["NudeNetClassifier", "available"]
