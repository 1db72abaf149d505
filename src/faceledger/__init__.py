"""faceledger: open face recognition with measured error rates and an accountable trail."""

from faceledger.config import QualityGates, Settings
from faceledger.errors import FaceLedgerError
from faceledger.pipeline import Engine, VerifyResult
from faceledger.types import (
    Box,
    Decision,
    DecodedImage,
    Detection,
    FaceResult,
    FMREstimate,
    Landmarks,
    Outcome,
    QualityReport,
    Template,
)
from faceledger.version import __version__

__all__ = [
    "Box",
    "Decision",
    "DecodedImage",
    "Detection",
    "Engine",
    "FMREstimate",
    "FaceLedgerError",
    "FaceResult",
    "Landmarks",
    "Outcome",
    "QualityGates",
    "QualityReport",
    "Settings",
    "Template",
    "VerifyResult",
    "__version__",
]
