"""YOLOv8 signature detector: inference wrapper, training, evaluation and export.

``from sigpipe.detector import SignatureDetector, Detection`` is the inference API; training, evaluation and export
live in :mod:`sigpipe.detector.train`, :mod:`sigpipe.detector.evaluate` and :mod:`sigpipe.detector.export`.
"""

from sigpipe.detector.detector import Detection, SignatureDetector

__all__ = ["Detection", "SignatureDetector"]
