"""Scores → calibrated false-match rates → decisions."""

from faceledger.match.verify import decide, require_calibration

__all__ = ["decide", "require_calibration"]
