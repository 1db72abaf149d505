"""Aligned face crops for reviewers: the probe face of a search beside an enrolled face.

A reviewer compares two faces best when both are shown as the engine sees them: warped by the
engine's own aligner onto the model card's reference points, hence at the same scale and
pose, with the five landmarks mapped into the crop for an optional overlay. Who may see which
image, and the audit of each view, are the rules of :func:`~faceledger.usecases.review.
probe_image` and :func:`~faceledger.usecases.images.enrolled_image`, which these call.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from faceledger.access import Operation, User, is_allowed
from faceledger.align import align_face, chip_mapping
from faceledger.detect import select_face
from faceledger.errors import InvalidArgument, NoFace, NotFound
from faceledger.gallery.workspace import Workspace
from faceledger.models.card import AlignSpec
from faceledger.pipeline import Engine
from faceledger.types import Box, DecodedImage, Detection
from faceledger.usecases.images import enrolled_image
from faceledger.usecases.review import probe_image

MIN_SIZE = 32
MAX_SIZE = 1024
"""Bounds of a crop's side in pixels (the model card's input size when none is asked for)."""
MIN_IOU = 0.5
"""The least overlap of a fresh detection with the recorded box of a probe face."""


@dataclass(frozen=True)
class FaceCrop:
    """A face warped onto the model's reference points, as a PNG of ``size`` × ``size``."""

    png: bytes
    size: int
    landmarks: tuple[tuple[float, float], ...]
    """The five landmarks (:class:`~faceledger.types.Landmarks` order), crop pixels."""
    sha256: str
    """The sha256 of the source image (the kept probe or enrolled image)."""


def probe_face_crop(
    ws: Workspace, actor: User, search_id: str, face_index: int, *, size: int | None = None
) -> FaceCrop:
    """Face ``face_index`` of a search's kept probe, aligned by the engine of the search's
    galleries' model (a gallery ``actor`` reviews first): for its searcher and the reviewers
    of a gallery it searched, each view audited (:func:`probe_image`)."""
    _check_size(size)  # before the view is audited
    image = probe_image(ws, actor, search_id)
    recorded = _recorded_box(image.faces, search_id, face_index)
    engine = _search_engine(ws, actor, search_id)
    img = engine.load(image.data)
    detection = _matching(_detections(engine, img), recorded, face_index)
    return _crop(img.pixels, detection, _spec(engine, size), image.sha256)


def enrolled_face_crop(
    ws: Workspace, actor: User, gallery: str, template_id: int, *, size: int | None = None
) -> FaceCrop:
    """The enrolled face of a template's kept image, aligned by its gallery's engine: for the
    users :func:`enrolled_image` lets see the image, each view audited there."""
    _check_size(size)
    image = enrolled_image(ws, actor, gallery, template_id)
    engine = ws.engine_for(ws.store.get_gallery_by_name(gallery))
    img = engine.load(image.data)
    # enrolment embeds the only face of its image (selection "only"), so does this
    detection = select_face(_detections(engine, img), "only", img.width, img.height)
    return _crop(img.pixels, detection, _spec(engine, size), image.sha256)


def _detections(engine: Engine, img: DecodedImage) -> list[Detection]:
    """The faces of ``img`` through :meth:`Engine.detect` (which a service's engine
    serialises with its other model calls)."""
    return [f.detection for f in engine.detect(img)]


def _recorded_box(faces: Sequence[dict[str, Any]], search_id: str, face_index: int) -> Box:
    for face in faces:
        if int(face.get("face_index", -1)) == face_index:
            return Box(**{k: float(v) for k, v in face["box"].items()})
    raise NotFound(f"search {search_id} searched no face {face_index} of its probe")


def _search_engine(ws: Workspace, actor: User, search_id: str) -> Engine:
    """The engine of the first gallery still there that the search named, preferring the
    galleries ``actor`` reviews (their enrolled crops are then at the same scale)."""
    named = ws.reviews.search(search_id).galleries
    reviewed = [g for g in named if is_allowed(actor, Operation.REVIEW, g)]
    for name in (*reviewed, *named):
        try:
            return ws.engine_for(ws.store.get_gallery_by_name(name))
        except NotFound:
            continue
    raise NotFound(f"no gallery that search {search_id} named is left")


def _matching(found: Sequence[Detection], recorded: Box, face_index: int) -> Detection:
    if not found:
        raise NoFace("no face found in the kept probe image")
    best = max(found, key=lambda d: d.box.iou(recorded))
    if best.box.iou(recorded) < MIN_IOU:
        raise NoFace(
            f"no face found where face {face_index} of the probe was recorded "
            f"(best overlap {best.box.iou(recorded):.2f} < {MIN_IOU})"
        )
    return best


def _check_size(size: int | None) -> None:
    if size is not None and not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidArgument(f"crop size must be {MIN_SIZE} to {MAX_SIZE} pixels, not {size}")


def _spec(engine: Engine, size: int | None) -> AlignSpec:
    """The card's alignment, scaled to ``size`` pixels a side."""
    spec = engine.card.align
    if size is None or size == spec.size:
        return spec
    k = size / spec.size
    return AlignSpec(size, tuple((x * k, y * k) for x, y in spec.reference))


def _crop(
    pixels: npt.NDArray[np.uint8], detection: Detection, spec: AlignSpec, sha256: str
) -> FaceCrop:
    chip = align_face(pixels, detection, spec).chip
    out = io.BytesIO()
    Image.fromarray(chip).save(out, format="PNG")
    points = np.array([[p.x, p.y] for p in detection.landmarks.points], dtype=np.float64)
    mapped = chip_mapping(spec, points) @ np.vstack([points.T, np.ones(len(points))])
    landmarks = tuple((float(x), float(y)) for x, y in mapped.T)
    return FaceCrop(out.getvalue(), spec.size, landmarks, sha256)
