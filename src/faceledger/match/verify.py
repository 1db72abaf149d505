"""1:1 decisions at a threshold stated as a target false-match rate."""

from __future__ import annotations

from faceledger.errors import CalibrationError, InvalidArgument, ModelMismatch
from faceledger.models.calibration import CalibrationTable
from faceledger.models.card import ModelCard
from faceledger.types import Decision, Outcome, Template


def require_calibration(card: ModelCard) -> CalibrationTable:
    if card.calibration is None:
        raise CalibrationError(
            f"model {card.id} has no calibration table; build one with `faceledger calibrate`"
        )
    return card.calibration


def decide(a: Template, b: Template, card: ModelCard, target_fmr: float) -> Decision:
    """Compare two templates of ``card``'s model and decide at ``target_fmr``."""
    check_fmr(target_fmr)
    score = a.similarity(b)  # raises ModelMismatch across models
    if a.model_id != card.id:
        raise ModelMismatch(f"templates are of model {a.model_id!r}, not {card.id!r}")
    table = require_calibration(card)
    threshold = table.threshold_for(target_fmr)
    return Decision(
        score=score,
        fmr=table.fmr_at(score),
        target_fmr=target_fmr,
        threshold=threshold,
        outcome=Outcome.MATCH if score >= threshold else Outcome.NO_MATCH,
        model_id=card.id,
        group_fmr=group_fmr_at(table, threshold),
    )


def check_fmr(fmr: float) -> None:
    """A target false-match rate must be a rate: in (0, 1)."""
    if not 0.0 < fmr < 1.0:
        raise InvalidArgument(f"target FMR must be in (0, 1), got {fmr:g}")


def group_fmr_at(table: CalibrationTable, threshold: float) -> tuple[tuple[str, float], ...]:
    return tuple(
        (name, curve.fmr_at(threshold).value) for name, curve in sorted(table.groups.items())
    )
