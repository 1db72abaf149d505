"""Face quality: size, sharpness, exposure, pose, a combined 0–100 score and gates."""

from faceledger.quality.measures import assess_quality

__all__ = ["assess_quality"]
