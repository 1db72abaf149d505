"""Export dlib's face ResNet to ONNX: the same network and weights on a faster runtime.

Reads ``dlib_face_recognition_resnet_model_v1.dat`` with faceledger's own parser, writes the
equivalent ONNX graph and a model card next to it, and (by default) checks on the bundled
sample faces that both runtimes give the same templates before the card is written.

Model id: the exported card keeps the dlib card's id (``dlib-resnet-v1``) unless told
otherwise. Its templates agree with dlib's to better than 1e-4 cosine (checked at export and
by the parity test), far below the resolution of the calibration table, so galleries,
calibration and thresholds stay valid when a deployment switches runtime. Point
``Settings.model_dir`` at the export folder to use it; the built-in dlib card stays the
reference. Nothing is exported at import time: call :func:`export_dlib_resnet_onnx`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceledger.embed.base import Embedder
from faceledger.errors import ModelError
from faceledger.models.card import ModelCard, ModelFile
from faceledger.types import AlignedFace

ONNX_FILENAME = "dlib_face_recognition_resnet_model_v1.onnx"
PARITY_MIN_COSINE = 1.0 - 1e-4
"""Templates of the two runtimes must agree at least this well (cosine similarity)."""


@dataclass(frozen=True)
class OnnxExport:
    card: ModelCard
    card_path: Path
    model_path: Path
    sha256: str
    faces_checked: int
    """Faces of the bundled sample compared between dlib and onnxruntime (0: not checked)."""
    worst_cosine: float | None


def builtin_dlib_card() -> ModelCard:
    from faceledger.models.registry import ModelRegistry

    return ModelRegistry().get("dlib-resnet-v1")


def build_model_bytes(source: ModelCard) -> bytes:
    """The serialized ONNX model for the dlib card ``source`` (weights checksum verified)."""
    from faceledger.embed._dlib_net import parse_face_resnet
    from faceledger.embed._dlib_onnx_graph import build_onnx

    if source.backend != "dlib":
        raise ModelError(f"model {source.id} is not a dlib model (backend {source.backend!r})")
    weights = source.file("embedder").verified_path(source.card_dir)
    net = parse_face_resnet(weights.read_bytes(), str(weights))
    model = build_onnx(net, producer_version=source.file("embedder").sha256[:12])
    data: bytes = model.SerializeToString()
    return data


def onnx_card(source: ModelCard, model_id: str, sha256: str, out_dir: Path) -> ModelCard:
    """The card of the exported model: same geometry, dimension and calibration as ``source``."""
    src_sha = source.file("embedder").sha256
    return replace(
        source,
        id=model_id,
        name=f"{source.name}, ONNX export",
        backend="onnx",
        files=(
            ModelFile(role="embedder", filename=ONNX_FILENAME, sha256=sha256, path=ONNX_FILENAME),
        ),
        description=(
            f"{source.description} This is the same network and weights (dlib file sha256 "
            f"{src_sha}) converted to ONNX by faceledger; the graph does dlib's input "
            "normalisation itself ((pixel - per-channel mean) / 256), so mean=0 and std=1 here. "
            f"Templates agree with the dlib runtime's to at least {PARITY_MIN_COSINE} cosine."
        ),
        input_mean=0.0,
        input_std=1.0,
        card_dir=out_dir,
    )


def sample_faces(source: ModelCard, limit: int | None = None) -> list[AlignedFace]:
    """Aligned chips of the faces in the bundled sample images (for parity checks)."""
    from faceledger.align import align_face
    from faceledger.config import Settings
    from faceledger.detect import make_detector
    from faceledger.io import ImageLimits, load_image

    sample = Path(str(resources.files("faceledger") / "sample"))
    settings = Settings()
    detector = make_detector(settings)
    limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)
    faces: list[AlignedFace] = []
    for path in sorted(sample.glob("*.jpg"))[:limit]:
        img = load_image(path, limits)
        faces.extend(
            align_face(img.pixels, d, source.align) for d in detector.detect_prominent(img.pixels)
        )
    return faces


def parity_cosines(
    reference: ModelCard,
    candidate_card: ModelCard,
    faces: Sequence[AlignedFace],
    *,
    candidate: Embedder | None = None,
) -> npt.NDArray[np.float64]:
    """Cosine similarity between the two models' templates of each face.

    ``candidate`` serves ``candidate_card`` when given (a graph loaded from memory).
    """
    from faceledger.embed import make_embedder

    a = make_embedder(reference).embed(faces)
    b = (candidate or make_embedder(candidate_card)).embed(faces)
    va = np.stack([t.vector for t in a]).astype(np.float64)
    vb = np.stack([t.vector for t in b]).astype(np.float64)
    cos: npt.NDArray[np.float64] = np.sum(va * vb, axis=1) / (
        np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1)
    )
    return cos


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_dlib_resnet_onnx(
    out_dir: Path,
    *,
    source: ModelCard | None = None,
    model_id: str | None = None,
    verify: bool = True,
    check_images: int = 10,
) -> OnnxExport:
    """Write ``<model_id>.json`` and the ONNX model into ``out_dir``.

    ``model_id`` defaults to the source card's id (templates interchangeable with dlib's).
    With ``verify`` the export is refused (ModelError, no card written) unless the faces of
    ``check_images`` bundled sample images get the same templates from both runtimes to 1e-4
    cosine (dlib's runtime is the slow side of that check).
    """
    src = source or builtin_dlib_card()
    mid = model_id or src.id
    out_dir.mkdir(parents=True, exist_ok=True)
    data = build_model_bytes(src)
    sha = hashlib.sha256(data).hexdigest()
    model_path = out_dir / ONNX_FILENAME
    try:
        _write_atomic(model_path, data)
    except OSError as exc:
        raise ModelError(f"cannot write {model_path}: {exc}") from exc
    card = onnx_card(src, mid, sha, out_dir)
    worst: float | None = None
    faces: list[AlignedFace] = []
    if verify:
        faces = sample_faces(src, check_images)
        if not faces:
            raise ModelError("no face found in the bundled sample; cannot check the export")
        worst = float(parity_cosines(src, card, faces).min())
        if worst < PARITY_MIN_COSINE:
            model_path.unlink(missing_ok=True)
            raise ModelError(
                f"ONNX export disagrees with dlib: worst template cosine {worst:.6f} "
                f"< {PARITY_MIN_COSINE}; nothing exported"
            )
    card_path = out_dir / f"{mid}.json"
    tmp = card_path.with_name(f".{card_path.name}.tmp")
    try:
        card.save(tmp)
        os.replace(tmp, card_path)
    except OSError as exc:
        raise ModelError(f"cannot write {card_path}: {exc}") from exc
    return OnnxExport(card, card_path, model_path, sha, len(faces), worst)
