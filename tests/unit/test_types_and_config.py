"""Small value types, face selection and settings (fakes, no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceledger import Settings
from faceledger.detect import select_face
from faceledger.errors import AmbiguousFace, InvalidArgument, ModelMismatch, NoFace
from faceledger.types import Box, Detection, Landmarks, Point, Template


def _det(left: float, top: float, side: float) -> Detection:
    pts = tuple(Point(left + side * f, top + side * 0.4) for f in (0.8, 0.6, 0.2, 0.4, 0.5))
    return Detection(
        Box(left, top, left + side, top + side),
        Landmarks(pts),
        0.9,
        1.0,
        "fake",  # type: ignore[arg-type]
    )


def test_box_iou() -> None:
    a, b = Box(0, 0, 10, 10), Box(5, 0, 15, 10)
    assert a.iou(b) == pytest.approx(50 / 150)
    assert a.iou(Box(20, 20, 30, 30)) == 0.0


def test_face_selection_policies() -> None:
    big_corner, small_centre = _det(0, 0, 100), _det(450, 450, 60)
    dets = [small_centre, big_corner]
    assert select_face(dets, "largest", 1000, 1000) is big_corner
    assert select_face(dets, "central", 1000, 1000) is small_centre
    with pytest.raises(AmbiguousFace):
        select_face(dets, "only", 1000, 1000)
    assert select_face([big_corner], "only", 1000, 1000) is big_corner
    with pytest.raises(NoFace):
        select_face([], "largest", 10, 10)


def test_templates_of_different_models_are_not_comparable() -> None:
    v = np.ones(4, dtype=np.float32) / 2
    a, b = Template("model-a", v), Template("model-b", v)
    assert a.similarity(Template("model-a", v)) == pytest.approx(1.0)
    with pytest.raises(ModelMismatch, match=r"model-a.*model-b"):
        a.similarity(b)
    with pytest.raises(ModelMismatch):
        a.similarity(Template("model-a", np.ones(8, dtype=np.float32)))


def test_template_bytes_round_trip() -> None:
    v = np.linspace(-1, 1, 128, dtype=np.float32)
    t = Template.from_bytes("m", Template("m", v).to_bytes())
    assert np.array_equal(t.vector, v)


def test_settings_from_env() -> None:
    s = Settings.from_env(
        {
            "FACELEDGER_DETECTOR": "cnn",
            "FACELEDGER_DEFAULT_FMR": "1e-4",
            "FACELEDGER_FLIP_AVERAGE": "yes",
            "FACELEDGER_MODEL_DIR": "/tmp/cards",
            "FACELEDGER_GATE_MIN_INTER_EYE_PX": "30",
            "UNRELATED": "x",
        },
        workers=3,
    )
    assert s.detector == "cnn" and s.default_fmr == 1e-4 and s.flip_average
    assert s.model_dir == Path("/tmp/cards") and s.workers == 3
    assert s.gates.min_inter_eye_px == 30.0


@pytest.mark.parametrize(
    "env",
    [
        {"FACELEDGER_DETECTOR": "magic"},
        {"FACELEDGER_WORKERS": "many"},
        {"FACELEDGER_FLIP_AVERAGE": "perhaps"},
    ],
)
def test_bad_settings_are_typed_errors(env: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument):
        Settings.from_env(env)
