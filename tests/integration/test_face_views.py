"""Aligned crops for reviewers: a search's probe faces and enrolled faces, as the engine's
aligner cuts them, with the landmarks mapped into the crop."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceledger import Settings
from faceledger.access import Role, User
from faceledger.access.policy import GrantLevel
from faceledger.align import align_face, chip_mapping
from faceledger.errors import InvalidArgument, NotFound, PermissionDenied
from faceledger.gallery import Workspace, open_workspace
from faceledger.models.card import AlignSpec
from faceledger.pipeline import Engine
from faceledger.types import AlignedFace, Box, Detection, Landmarks, Point, Template
from faceledger.usecases import (
    EnrolImage,
    FaceCrop,
    SearchRequest,
    SearchResult,
    enrol_image,
    enrolled_face_crop,
    probe_face_crop,
    search,
)
from faceledger.usecases.images import OP_IMAGE_VIEW
from faceledger.usecases.review import OP_PROBE_VIEW


@dataclass
class Scene:
    ws: Workspace
    users: dict[str, User]
    result: SearchResult
    templates: dict[str, int]
    """Template id of each enrolled subject."""


def _side_by_side(a: Path, b: Path) -> bytes:
    """Two portraits pasted side by side: a probe with two faces."""
    left, right = Image.open(a).convert("RGB"), Image.open(b).convert("RGB")
    both = Image.new("RGB", (left.width + right.width, max(left.height, right.height)))
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    out = io.BytesIO()
    both.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Scene]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("views"),
        keep_probe_images=True,
        keep_enrolled_images=True,
    )
    ws = open_workspace(settings)
    admin = ws.access.create_user("admin", [Role.ADMIN], by=None)
    ws.store.create_gallery(
        "g", model_id="dlib-resnet-v1", created_by="admin", legal_basis="statute"
    )
    grants = {
        "enroller": (Role.ENROLLER, GrantLevel.ENROL),
        "searcher": (Role.SEARCHER, GrantLevel.SEARCH),
        "reviewer": (Role.REVIEWER, GrantLevel.VIEW_IMAGES),
    }
    users = {"admin": admin}
    for name, (role, level) in grants.items():
        ws.access.create_user(name, [role], by=admin)
        users[name] = ws.access.grant(name, "g", level, by=admin)
    users["outsider"] = ws.access.create_user("outsider", [Role.REVIEWER], by=admin)
    users["other_searcher"] = ws.access.create_user("other_searcher", [Role.SEARCHER], by=admin)
    img = data_dir / "london/images"
    templates = {
        sid: enrol_image(
            ws, users["enroller"], EnrolImage("g", sid, img / f"{sid}_neutral.jpg")
        ).template_id
        for sid in ("001", "002", "003")
    }
    probe = _side_by_side(img / "001_smiling.jpg", img / "002_smiling.jpg")
    req = SearchRequest(probe, ("g",), "review ui", "FV-1", all_faces=True)
    yield Scene(ws, users, search(ws, users["searcher"], req), templates)
    ws.close()


def _chip(crop: FaceCrop) -> np.ndarray:
    with Image.open(io.BytesIO(crop.png)) as im:
        assert im.format == "PNG"
        assert im.size == (crop.size, crop.size)
        return np.asarray(im.convert("RGB"))


def _embed(engine: Engine, crop: FaceCrop) -> Template:
    det = Detection(Box(0, 0, 1, 1), Landmarks((Point(0, 0),) * 5), 1.0, 1.0, "crop")  # type: ignore[arg-type]
    (template,) = engine.embed_faces([AlignedFace(np.ascontiguousarray(_chip(crop)), det)])
    return template


def _near_reference(crop: FaceCrop, spec: AlignSpec) -> None:
    k = crop.size / spec.size
    got = np.array(crop.landmarks)
    want = np.array(spec.reference) * k
    assert got.shape == (5, 2)
    # the least-squares similarity leaves each landmark within a few pixels of its place
    assert np.abs(got - want).max() < 0.04 * crop.size


def test_each_probe_crop_is_the_face_recorded_for_its_index(scene: Scene) -> None:
    ws, engine = scene.ws, scene.ws.engine_for(scene.ws.store.get_gallery_by_name("g"))
    assert len(scene.result.faces) == 2
    for face in scene.result.faces:
        crop = probe_face_crop(
            ws, scene.users["reviewer"], scene.result.search_id, face.face.face_index
        )
        assert crop.sha256 == scene.result.probe_sha256
        assert crop.size == engine.card.align.size
        _near_reference(crop, engine.card.align)
        # the crop is the very chip the search embedded for this face
        assert face.face.template is not None
        assert _embed(engine, crop).similarity(face.face.template) > 0.99
        (lead,) = [c for c in face.candidates if c.rank == 1]
        enrolled = enrolled_face_crop(ws, scene.users["reviewer"], "g", lead.template_id)
        assert _embed(engine, crop).similarity(_embed(engine, enrolled)) > 0.8
    a, b = (
        probe_face_crop(ws, scene.users["searcher"], scene.result.search_id, f.face.face_index)
        for f in scene.result.faces
    )
    assert a.png != b.png
    assert _embed(engine, a).similarity(_embed(engine, b)) < 0.9


def test_enrolled_crop_is_the_enrolled_face(scene: Scene) -> None:
    ws = scene.ws
    engine = ws.engine_for(ws.store.get_gallery_by_name("g"))
    tid = scene.templates["003"]
    crop = enrolled_face_crop(ws, scene.users["enroller"], "g", tid)
    stored = ws.store.get_templates([tid])[tid]
    assert crop.sha256 == stored.info.image_sha256
    _near_reference(crop, engine.card.align)
    enrolled = Template(engine.card.id, stored.vector)
    assert _embed(engine, crop).similarity(enrolled) > 0.99


def test_size_scales_the_crop_and_its_landmarks(scene: Scene) -> None:
    ws, spec = scene.ws, scene.ws.engine.card.align
    tid = scene.templates["001"]
    small = enrolled_face_crop(ws, scene.users["reviewer"], "g", tid)
    big = enrolled_face_crop(ws, scene.users["reviewer"], "g", tid, size=2 * spec.size)
    assert big.size == 2 * spec.size
    _chip(big)
    assert np.allclose(np.array(big.landmarks), 2 * np.array(small.landmarks), atol=2.5)
    face = scene.result.faces[0].face.face_index
    crop = probe_face_crop(ws, scene.users["searcher"], scene.result.search_id, face, size=300)
    assert crop.size == 300
    _near_reference(crop, spec)


def test_the_mapped_landmarks_are_where_the_aligner_puts_the_pixels() -> None:
    """A bright dot drawn in the image lands in the chip where the mapping says."""
    spec = AlignSpec(150, ((111.0, 46.3), (89.6, 47.9), (37.1, 46.4), (58.4, 47.9), (74.0, 87.8)))
    rng = np.random.default_rng(7)
    for _ in range(4):
        angle, scale = rng.uniform(-0.5, 0.5), rng.uniform(0.8, 3.0)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
        points = np.array(spec.reference) @ rot.T + rng.uniform(100, 300, 2)
        exact = chip_mapping(spec, points) @ np.vstack([points.T, np.ones(5)])
        assert np.abs(exact.T - np.array(spec.reference)).max() < 1.0
        points += rng.normal(0, 2, points.shape)
        dot = points.mean(axis=0) + np.array([5.0, -7.0])
        yy, xx = np.mgrid[0:600, 0:800]
        pixels = np.zeros((600, 800, 3), np.uint8)
        pixels[(xx - dot[0]) ** 2 + (yy - dot[1]) ** 2 <= (2.5 * scale) ** 2] = 255
        marks = Landmarks(tuple(Point(float(x), float(y)) for x, y in points))  # type: ignore[arg-type]
        chip = align_face(pixels, Detection(Box(0, 0, 1, 1), marks, 1, 1, "dots"), spec).chip
        weight = chip[:, :, 0].astype(float)
        ys, xs = np.nonzero(weight)
        seen = np.average(xs, weights=weight[ys, xs]), np.average(ys, weights=weight[ys, xs])
        mapped = chip_mapping(spec, points) @ np.append(dot, 1.0)
        assert np.abs(mapped - np.array(seen)).max() < 1.0


def test_only_those_who_may_see_the_images_get_crops(scene: Scene) -> None:
    ws, sid = scene.ws, scene.result.search_id
    tid = scene.templates["001"]
    for who in ("outsider", "other_searcher", "enroller"):
        with pytest.raises(PermissionDenied):
            probe_face_crop(ws, scene.users[who], sid, 0)
    for who in ("outsider", "other_searcher", "searcher"):
        with pytest.raises(PermissionDenied):
            enrolled_face_crop(ws, scene.users[who], "g", tid)
    with pytest.raises(NotFound):
        probe_face_crop(ws, scene.users["reviewer"], sid, 7)
    with pytest.raises(NotFound):
        enrolled_face_crop(ws, scene.users["reviewer"], "g", 10**9)
    with pytest.raises(InvalidArgument):
        enrolled_face_crop(ws, scene.users["reviewer"], "g", tid, size=8)


def test_each_view_is_audited(scene: Scene) -> None:
    ws, sid = scene.ws, scene.result.search_id
    probes = len(list(ws.audit.entries(operation=OP_PROBE_VIEW)))
    images = len(list(ws.audit.entries(operation=OP_IMAGE_VIEW)))
    probe_face_crop(ws, scene.users["reviewer"], sid, 1)
    enrolled_face_crop(ws, scene.users["reviewer"], "g", scene.templates["002"])
    *_, probe_view = ws.audit.entries(operation=OP_PROBE_VIEW)
    *_, image_view = ws.audit.entries(operation=OP_IMAGE_VIEW)
    assert len(list(ws.audit.entries(operation=OP_PROBE_VIEW))) == probes + 1
    assert len(list(ws.audit.entries(operation=OP_IMAGE_VIEW))) == images + 1
    assert probe_view.record.actor == "reviewer"
    assert probe_view.record.details["search_id"] == sid
    assert image_view.record.details["template_id"] == scene.templates["002"]
