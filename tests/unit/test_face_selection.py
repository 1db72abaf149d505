"""``select_face``: the ``primary`` policy against ``largest`` and ``central`` on synthetic
detections (no model). Each layout is one where a single-cue policy picks the wrong face, so
a ``primary`` that dropped size, centre or confidence would fail here."""

from __future__ import annotations

import pytest

from faceledger.config import FaceSelection
from faceledger.detect.select import select_face
from faceledger.errors import AmbiguousFace, InvalidArgument, NoFace
from faceledger.types import Box, Detection, Landmarks, Point


def det(cx: float, cy: float, side: float, confidence: float = 1.0) -> Detection:
    """A square face box of ``side`` px centred at (cx, cy); landmarks anywhere inside."""
    left, top = cx - side / 2, cy - side / 2
    pts = tuple(Point(left + side * f, top + side * 0.4) for f in (0.8, 0.6, 0.2, 0.4, 0.5))
    return Detection(
        Box(left, top, left + side, top + side),
        Landmarks(pts),  # type: ignore[arg-type]
        confidence,
        confidence,
        "fake",
    )


def test_centred_subject_beats_a_larger_bystander_at_the_edge() -> None:
    # A 250 px crop centred on the subject; a bystander nearer the camera, 1.3x larger,
    # at the right edge.
    subject = det(125, 125, 100)
    bystander = det(220, 140, 130)
    for faces in ([subject, bystander], [bystander, subject]):
        assert select_face(faces, "largest", 250, 250) is bystander
        assert select_face(faces, "primary", 250, 250) is subject


def test_off_centre_large_subject_beats_a_small_central_background_face() -> None:
    # A portrait composed with the subject at a third of the width; a face 0.4x as large
    # behind, near the middle.
    subject = det(133, 200, 120)
    background = det(230, 190, 48)
    for faces in ([subject, background], [background, subject]):
        assert select_face(faces, "central", 400, 400) is background
        assert select_face(faces, "primary", 400, 400) is subject


def test_large_off_centre_subject_of_a_scene_beats_small_people_at_the_centre() -> None:
    subject = det(260, 250, 140)
    others = [det(400, 300, 50), det(650, 120, 60), det(120, 480, 45)]
    faces = [*others, subject]
    assert select_face(faces, "central", 800, 600) is others[0]
    assert select_face(faces, "primary", 800, 600) is subject


def test_low_confidence_loses_to_an_equal_high_confidence_detection() -> None:
    # Same size, same distance from the centre (mirror images): only confidence differs.
    weak = det(95, 125, 80, confidence=0.3)
    strong = det(155, 125, 80, confidence=0.95)
    for faces in ([weak, strong], [strong, weak]):
        assert select_face(faces, "primary", 250, 250) is strong


def test_a_much_larger_face_is_not_overruled_by_confidence() -> None:
    # Confidence weighs little: a 0.55-confidence subject twice the size of a sure one wins.
    subject = det(125, 125, 100, confidence=0.55)
    small = det(140, 115, 50, confidence=1.0)
    assert select_face([small, subject], "primary", 250, 250) is subject


def test_primary_does_not_depend_on_the_image_scale() -> None:
    faces = [det(125, 125, 100), det(220, 140, 130), det(40, 60, 70)]
    pick = select_face(faces, "primary", 250, 250)
    scaled = [
        Detection(d.box.scaled(4), d.landmarks.scaled(4), d.confidence, d.raw_score, "fake")
        for d in faces
    ]
    assert scaled[faces.index(pick)] is select_face(scaled, "primary", 1000, 1000)


@pytest.mark.parametrize("policy", ["primary", "largest", "central", "only"])
def test_one_face_is_picked_by_every_policy(policy: FaceSelection) -> None:
    face = det(30, 40, 20, confidence=0.1)
    assert select_face([face], policy, 250, 250) is face


def test_only_refuses_several_faces() -> None:
    with pytest.raises(AmbiguousFace):
        select_face([det(125, 125, 100), det(40, 40, 50)], "only", 250, 250)


@pytest.mark.parametrize("policy", ["primary", "largest", "central", "only"])
def test_no_face_raises(policy: FaceSelection) -> None:
    with pytest.raises(NoFace):
        select_face([], policy, 250, 250)


def test_unknown_policy_raises() -> None:
    with pytest.raises(InvalidArgument):
        select_face([det(125, 125, 100)], "subject", 250, 250)  # type: ignore[arg-type]
