"""Face detection: every face with a box, five landmarks and a confidence."""

from faceledger.detect.base import Detector, make_detector
from faceledger.detect.select import select_face

__all__ = ["Detector", "make_detector", "select_face"]
