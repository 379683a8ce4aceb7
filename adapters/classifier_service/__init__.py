"""The image classifier as a service of its own (``genstudio classifier``): the client
behind the ``Classifier`` port, and the wire format both sides share."""

from genstudio.adapters.classifier_service.client import ClassifierServiceClient
from genstudio.adapters.classifier_service.wire import (
    CLASSIFY_IMAGE_PATH,
    IMAGE_TYPES,
    SURFACE_HEADER,
    WireLabel,
    WireVerdict,
)

__all__ = [
    "CLASSIFY_IMAGE_PATH",
    "IMAGE_TYPES",
    "SURFACE_HEADER",
    "ClassifierServiceClient",
    "WireLabel",
    "WireVerdict",
]
