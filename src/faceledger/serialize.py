"""Plain-data (JSON-able) forms of the stage values, for caches, stores and the API."""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Any

import numpy as np

from faceledger.types import (
    Box,
    Detection,
    FaceResult,
    FMREstimate,
    Landmarks,
    Point,
    QualityReport,
    Template,
)


def detection_to_dict(d: Detection) -> dict[str, Any]:
    return {
        "box": asdict(d.box),
        "landmarks": [[p.x, p.y] for p in d.landmarks.points],
        "confidence": d.confidence,
        "raw_score": d.raw_score,
        "detector": d.detector,
    }


def detection_from_dict(data: dict[str, Any]) -> Detection:
    pts = tuple(Point(float(x), float(y)) for x, y in data["landmarks"])
    return Detection(
        box=Box(**{k: float(v) for k, v in data["box"].items()}),
        landmarks=Landmarks(pts),  # type: ignore[arg-type]
        confidence=float(data["confidence"]),
        raw_score=float(data["raw_score"]),
        detector=str(data["detector"]),
    )


def fmr_json(est: FMREstimate) -> dict[str, Any]:
    return {
        "value": est.value,
        "upper_bound": est.upper_bound,
        "impostor_pairs": est.impostor_pairs,
    }


def quality_to_dict(q: QualityReport) -> dict[str, Any]:
    out = asdict(q)
    out["flags"] = list(q.flags)
    return out


def quality_from_dict(data: dict[str, Any]) -> QualityReport:
    return QualityReport(**{**data, "flags": tuple(data.get("flags", ()))})


def template_to_dict(t: Template) -> dict[str, Any]:
    return {"model_id": t.model_id, "vector": base64.b64encode(t.to_bytes()).decode("ascii")}


def template_from_dict(data: dict[str, Any]) -> Template:
    raw = base64.b64decode(data["vector"])
    return Template(str(data["model_id"]), np.frombuffer(raw, dtype="<f4").astype(np.float32))


def face_to_dict(f: FaceResult) -> dict[str, Any]:
    return {
        "detection": detection_to_dict(f.detection),
        "quality": quality_to_dict(f.quality),
        "template": template_to_dict(f.template) if f.template is not None else None,
        **face_position(f),
    }


def face_position(f: FaceResult) -> dict[str, Any]:
    """Which face of its image ``f`` is, of how many, and what picked it (#19 item 14)."""
    return {
        "face_index": f.face_index,
        "faces_in_image": f.faces_in_image,
        "selection": f.selection,
    }


def face_record(f: FaceResult) -> dict[str, Any]:
    """What is kept with a search's probe image for its reviewers: the face's box, detector
    and quality, without landmarks or template (the shape of the API's ``FaceOut``)."""
    return {
        "box": asdict(f.detection.box),
        "confidence": f.detection.confidence,
        "detector": f.detection.detector,
        "quality": quality_to_dict(f.quality),
        **face_position(f),
    }


def face_from_dict(data: dict[str, Any]) -> FaceResult:
    t = data.get("template")
    return FaceResult(
        detection_from_dict(data["detection"]),
        quality_from_dict(data["quality"]),
        template_from_dict(t) if t else None,
        face_index=int(data.get("face_index", 0)),
        faces_in_image=int(data.get("faces_in_image", 1)),
        selection=data.get("selection"),
    )
