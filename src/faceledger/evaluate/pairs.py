"""1:1 evaluation of a pairs protocol: scores, EER, FNMR at FMR, k-fold accuracy, groups.

A pair with an image that yielded no template (no face, bad file ...) still counts: it is
scored ``-inf``, a non-match at every threshold, and reported in ``no_face``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceledger.batch import EmbedOutcome
from faceledger.cache import TemplateCache
from faceledger.config import Settings
from faceledger.evaluate.jsonio import interval, number
from faceledger.evaluate.metrics import (
    FMR_TARGETS,
    EqualErrorRate,
    ErrorCurve,
    GroupRates,
    GroupReport,
    KFoldAccuracy,
    Labels,
    NotMeasurable,
    Scores,
    VerifyOperatingPoint,
    accuracy_at,
    equal_error_rate,
    error_curve,
    fnmr_at_fmr,
    group_rates,
    kfold_accuracy,
    operating_point,
    rate_key,
    threshold_at_fmr,
)
from faceledger.evaluate.protocols import PairsProtocol
from faceledger.evaluate.templates import ImageTemplates, embed_images

SCHEMA = "faceledger.eval.pairs/1"


@dataclass(frozen=True)
class ThresholdChoice:
    value: float
    rule: str
    """How it was chosen: ``given``, ``fmr<=0.001`` or ``eer``."""


def choose_threshold(
    curve: ErrorCurve,
    eer: EqualErrorRate | None,
    *,
    given: float | None,
    target_fmr: float,
) -> ThresholdChoice | None:
    """The one threshold for per-group figures: given > target FMR (if measurable) > EER."""
    if given is not None:
        return ThresholdChoice(given, "given")
    t = threshold_at_fmr(curve, target_fmr) if curve.impostor else None
    if t is not None:
        return ThresholdChoice(t, f"fmr<={rate_key(target_fmr)}")
    if eer is not None:
        return ThresholdChoice(eer.threshold, "eer")
    return None


@dataclass(frozen=True)
class PairsEvaluation:
    protocol: PairsProtocol
    model_id: str
    scores: Scores
    """Per pair in file order; ``-inf`` where a side has no template."""
    same: Labels
    failed: Labels
    image_failures: dict[str, int]
    images: int
    curve: ErrorCurve
    eer: EqualErrorRate | None
    operating: dict[float, VerifyOperatingPoint | NotMeasurable]
    folds: KFoldAccuracy | None
    threshold: ThresholdChoice | None
    groups: GroupReport | None
    calibration_check: VerifyOperatingPoint | None = None
    """Rates measured here at the model card's calibrated threshold for its target FMR."""

    @property
    def genuine_scores(self) -> Scores:
        return self.scores[self.same]

    @property
    def impostor_scores(self) -> Scores:
        return self.scores[~self.same]

    def to_json(self) -> dict[str, Any]:
        ng, ni = int(self.same.sum()), int((~self.same).sum())
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "protocol": str(self.protocol.source),
            "model_id": self.model_id,
            "pairs": int(self.scores.size),
            "genuine": ng,
            "impostor": ni,
            "no_face": int(self.failed.sum()),
            "no_face_genuine": int((self.failed & self.same).sum()),
            "no_face_impostor": int((self.failed & ~self.same).sum()),
            "images": self.images,
            "images_failed": self.image_failures,
            "eer": number(self.eer.value) if self.eer else None,
            "eer_threshold": number(self.eer.threshold) if self.eer else None,
            "fnmr_at_fmr": {
                rate_key(t): (number(op.fnmr) if isinstance(op, VerifyOperatingPoint) else None)
                for t, op in self.operating.items()
            },
            "fmr_operating_points": {
                rate_key(t): operating_json(op) for t, op in self.operating.items()
            },
            "folds": folds_json(self.folds),
            "threshold": (
                {"value": number(self.threshold.value), "rule": self.threshold.rule}
                if self.threshold
                else None
            ),
            "accuracy": (
                number(accuracy_at(self.scores, self.same, self.threshold.value))
                if self.threshold
                else None
            ),
            "groups": {},
            "cross_group": None,
            "unlabelled": None,
            "differential": None,
            "calibration_check": calibration_json(self.calibration_check),
            "score_summary": {
                "genuine": summary_json(self.genuine_scores),
                "impostor": summary_json(self.impostor_scores),
            },
        }
        if self.groups is not None:
            g = self.groups
            out["groups"] = {k: group_json(v) for k, v in g.groups.items()}
            out["cross_group"] = group_json(g.cross_group)
            out["unlabelled"] = g.unlabelled
            out["differential"] = {
                "fmr": vars_json(g.fmr_differential),
                "fnmr": vars_json(g.fnmr_differential),
            }
        return out


def operating_json(op: VerifyOperatingPoint | NotMeasurable) -> dict[str, Any]:
    if isinstance(op, NotMeasurable):
        return {
            "measurable": False,
            "reason": op.reason,
            "needed": op.needed,
            "available": op.available,
        }
    return {
        "measurable": True,
        "threshold": number(op.threshold),
        "fmr": number(op.fmr),
        "fmr_ci": interval(op.fmr_ci),
        "false_matches": op.false_matches,
        "fnmr": number(op.fnmr),
        "fnmr_ci": interval(op.fnmr_ci),
        "false_non_matches": op.false_non_matches,
    }


def calibration_json(op: VerifyOperatingPoint | None) -> dict[str, Any] | None:
    """Declared (by the model card's calibration table) against measured on this data."""
    if op is None:
        return None
    return {
        "target_fmr": op.target,
        "threshold": number(op.threshold),
        "measured_fmr": number(op.fmr),
        "fmr_ci": interval(op.fmr_ci),
        "false_matches": op.false_matches,
        "fnmr": number(op.fnmr),
        "fnmr_ci": interval(op.fnmr_ci),
    }


def folds_json(k: KFoldAccuracy | None) -> dict[str, Any] | None:
    if k is None:
        return None
    return {
        "n": len(k.folds),
        "accuracy_mean": number(k.mean),
        "accuracy_std": number(k.std),
        "per_fold": [
            {"pairs": [f.start, f.stop], "threshold": number(f.threshold), "accuracy": f.accuracy}
            for f in k.folds
        ],
    }


def group_json(r: GroupRates) -> dict[str, Any]:
    return {
        "n": r.n,
        "genuine": r.genuine,
        "impostor": r.impostor,
        "fmr": number(r.fmr),
        "fmr_ci": interval(r.fmr_ci),
        "false_matches": r.false_matches,
        "fnmr": number(r.fnmr),
        "fnmr_ci": interval(r.fnmr_ci),
        "false_non_matches": r.false_non_matches,
    }


def vars_json(obj: object) -> dict[str, Any]:
    return {k: (number(v) if isinstance(v, float) else v) for k, v in vars(obj).items()}


def summary_json(s: Scores) -> dict[str, Any] | None:
    f = s[np.isfinite(s)]
    if f.size == 0:
        return None
    return {
        "n": int(f.size),
        "mean": number(float(f.mean())),
        "std": number(float(f.std())),
        "min": number(float(f.min())),
        "max": number(float(f.max())),
    }


def score_pairs(protocol: PairsProtocol, templates: ImageTemplates) -> tuple[Scores, Labels]:
    """Cosine similarity per pair (``-inf`` when a side has no template) and failure mask."""
    n = len(protocol.pairs)
    scores = np.full(n, -np.inf, dtype=np.float64)
    failed = np.zeros(n, dtype=bool)
    ok: list[int] = []
    a_vecs, b_vecs = [], []
    for k, pair in enumerate(protocol.pairs):
        va, vb = templates.get(pair.a), templates.get(pair.b)
        if va is None or vb is None:
            failed[k] = True
        else:
            ok.append(k)
            a_vecs.append(va)
            b_vecs.append(vb)
    if ok:
        a = np.stack(a_vecs).astype(np.float64)
        b = np.stack(b_vecs).astype(np.float64)
        scores[ok] = np.einsum("ij,ij->i", a, b)
    return scores, failed


def evaluate_pairs(
    protocol: PairsProtocol,
    templates: ImageTemplates,
    *,
    folds: int | None = 10,
    target_fmr: float = 1e-3,
    threshold: float | None = None,
    targets: Sequence[float] = FMR_TARGETS,
    calibrated: tuple[float, float] | None = None,
) -> PairsEvaluation:
    """Every figure of the pairs report from precomputed templates (fast, no model).

    ``calibrated`` is ``(target FMR, threshold)`` from the model card's calibration table:
    the rates measured at that threshold show whether the declared FMR holds on this data.
    """
    scores, failed = score_pairs(protocol, templates)
    same = np.array([p.same for p in protocol.pairs], dtype=bool)
    curve = error_curve(scores[same], scores[~same])
    eer = equal_error_rate(curve)
    choice = choose_threshold(curve, eer, given=threshold, target_fmr=target_fmr)
    groups = None
    if protocol.has_groups and choice is not None:
        groups = group_rates(
            scores,
            same,
            [p.group_a for p in protocol.pairs],
            [p.group_b for p in protocol.pairs],
            choice.value,
        )
    images = protocol.images()
    return PairsEvaluation(
        protocol=protocol,
        model_id=templates.model_id,
        scores=scores,
        same=same,
        failed=failed,
        image_failures=templates.failure_counts(images),
        images=len(images),
        curve=curve,
        eer=eer,
        operating=fnmr_at_fmr(scores[same], scores[~same], targets),
        folds=kfold_accuracy(scores, same, folds) if folds else None,
        threshold=choice,
        groups=groups,
        calibration_check=(
            operating_point(scores[same], scores[~same], calibrated[1], calibrated[0])
            if calibrated is not None and not same.all()
            else None
        ),
    )


def run_pairs(
    protocol: PairsProtocol,
    settings: Settings,
    *,
    workers: int | None = None,
    on_done: Callable[[EmbedOutcome], None] | None = None,
    cache: TemplateCache | None = None,
    folds: int | None = 10,
    target_fmr: float | None = None,
    threshold: float | None = None,
    calibrated: tuple[float, float] | None = None,
) -> PairsEvaluation:
    """Embed the protocol's images (each once) and evaluate."""
    templates = embed_images(
        protocol.images(), settings, workers=workers, on_done=on_done, cache=cache
    )
    return evaluate_pairs(
        protocol,
        templates,
        folds=folds,
        target_fmr=target_fmr if target_fmr is not None else settings.default_fmr,
        threshold=threshold,
        calibrated=calibrated,
    )
