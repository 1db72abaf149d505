"""Model cards: what a model is, which files it needs (with checksums), how it is calibrated."""

from faceledger.models.calibration import CalibrationTable
from faceledger.models.card import AlignSpec, ModelCard, ModelFile
from faceledger.models.registry import ModelRegistry

__all__ = ["AlignSpec", "CalibrationTable", "ModelCard", "ModelFile", "ModelRegistry"]
