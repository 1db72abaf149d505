"""dlib's face ResNet read by faceledger's own parser and run under onnxruntime: same templates.

Real weights, real faces from ``../shared/data`` (a sample across every set here; the full
check over every face is ``benchmarks/onnx_parity.py``).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from faceledger import Engine, Settings
from faceledger.align import align_face
from faceledger.batch import worker_engine
from faceledger.embed import make_embedder
from faceledger.embed._dlib_net import Affine, Conv, Fc, InputRGB, parse_face_resnet
from faceledger.embed.dlib_export import (
    PARITY_MIN_COSINE,
    OnnxExport,
    build_model_bytes,
    builtin_dlib_card,
    export_dlib_resnet_onnx,
)
from faceledger.embed.onnx import OnnxEmbedder
from faceledger.errors import ModelError, ModelFileError
from faceledger.match import decide
from faceledger.models import ModelCard, ModelFile, ModelRegistry
from faceledger.types import AlignedFace, Template

# a few images of every set in ../shared/data: colour, greyscale PGM, crops, odd photos
SAMPLE = {
    "london/images": 6,
    "utkface_subset/images": 6,
    "orl": 4,
    "johns": 4,
    "deepface": 4,
    "fr_examples": 4,
}


@pytest.fixture(scope="session")
def dlib_card() -> ModelCard:
    return builtin_dlib_card()


@pytest.fixture(scope="session")
def export(tmp_path_factory: pytest.TempPathFactory) -> OnnxExport:
    return export_dlib_resnet_onnx(tmp_path_factory.mktemp("onnx-model"))


@pytest.fixture(scope="session")
def reference_templates(dlib_card: ModelCard, data_faces: list[AlignedFace]) -> list[Template]:
    """dlib's own templates of ``data_faces`` (slow: computed once)."""
    return make_embedder(dlib_card).embed(data_faces)


@pytest.fixture(scope="session")
def data_faces(data_dir: Path, dlib_card: ModelCard) -> list[AlignedFace]:
    engine = Engine(Settings())
    faces: list[AlignedFace] = []
    for folder, n in SAMPLE.items():
        files = sorted(
            p
            for p in (data_dir / folder).rglob("*")
            if p.suffix.lower() in {".jpg", ".png", ".pgm"}
        )
        step = max(1, len(files) // n)
        for path in files[::step][:n]:
            img = engine.load(path)
            faces.extend(
                align_face(img.pixels, d, dlib_card.align)
                for d in engine.detector.detect_prominent(img.pixels)
            )
    return faces


def test_parser_reads_every_layer_of_the_dlib_file(dlib_card: ModelCard) -> None:
    path = dlib_card.file("embedder").verified_path(dlib_card.card_dir)
    net = parse_face_resnet(path.read_bytes())
    first = net.layers[0]
    assert isinstance(first, InputRGB)
    # dlib's input layer subtracts these per-channel means, then divides by 256
    assert first.mean == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    assert first.size == (150, 150)
    convs = [layer for layer in net.layers if isinstance(layer, Conv)]
    assert len(convs) == 29
    assert convs[0].weight.shape == (32, 3, 7, 7) and convs[0].stride == (2, 2)
    assert sum(isinstance(layer, Affine) for layer in net.layers) == 29
    fc = net.layers[-1]
    assert isinstance(fc, Fc) and fc.weight.shape == (256, 128) and fc.bias is None
    assert net.loss == "loss_metric_2"


def test_parser_rejects_truncated_and_altered_files(dlib_card: ModelCard) -> None:
    data = dlib_card.file("embedder").verified_path(dlib_card.card_dir).read_bytes()
    with pytest.raises(ModelError, match="end of data"):
        parse_face_resnet(data[: len(data) // 2])
    with pytest.raises(ModelError, match="trailing bytes"):
        parse_face_resnet(data + b"\x01\x01")
    renamed = data.replace(b"max_pool_2", b"max_pool_9", 1)
    with pytest.raises(ModelError, match="unsupported dlib layer 'max_pool_9'"):
        parse_face_resnet(renamed)
    with pytest.raises(ModelError):
        parse_face_resnet(b"not a dlib file")


def test_export_writes_model_and_card_with_checksum_and_same_geometry(
    export: OnnxExport, dlib_card: ModelCard
) -> None:
    assert export.model_path.is_file() and export.card_path.name == "dlib-resnet-v1.json"
    assert hashlib.sha256(export.model_path.read_bytes()).hexdigest() == export.sha256
    # the parity self-check ran on the bundled sample before the card was written
    assert export.faces_checked == 10
    assert export.worst_cosine is not None and export.worst_cosine >= PARITY_MIN_COSINE
    card = ModelRegistry(export.card_path.parent).get("dlib-resnet-v1")
    assert card.backend == "onnx" and card.file("embedder").sha256 == export.sha256
    assert card.id == dlib_card.id and card.dimension == dlib_card.dimension
    assert card.align == dlib_card.align
    assert card.calibration == dlib_card.calibration
    # the built-in card stays the reference: only a registry pointed at the export sees it
    assert ModelRegistry().get("dlib-resnet-v1").backend == "dlib"


def test_export_is_deterministic(export: OnnxExport, dlib_card: ModelCard) -> None:
    assert hashlib.sha256(build_model_bytes(dlib_card)).hexdigest() == export.sha256


def test_export_under_another_id_keeps_the_dlib_card_alongside(
    tmp_path: Path, dlib_card: ModelCard
) -> None:
    out = export_dlib_resnet_onnx(tmp_path, model_id="dlib-resnet-v1-onnx", verify=False)
    assert out.faces_checked == 0 and out.worst_cosine is None
    reg = ModelRegistry(tmp_path)
    assert reg.get("dlib-resnet-v1-onnx").backend == "onnx"
    assert reg.get("dlib-resnet-v1").backend == "dlib"


def test_export_refuses_a_non_dlib_card_and_tampered_weights(
    export: OnnxExport, tmp_path: Path, dlib_card: ModelCard
) -> None:
    with pytest.raises(ModelError, match="not a dlib model"):
        export_dlib_resnet_onnx(tmp_path / "a", source=export.card)
    weights = dlib_card.file("embedder").verified_path(dlib_card.card_dir).read_bytes()
    bad = tmp_path / "tampered.dat"
    bad.write_bytes(weights[:-4] + b"\x00\x00\x00\x00")
    tampered = replace(
        dlib_card,
        files=(ModelFile("embedder", bad.name, dlib_card.file("embedder").sha256, path=str(bad)),),
    )
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        export_dlib_resnet_onnx(tmp_path / "b", source=tampered)
    assert not (tmp_path / "b" / "dlib-resnet-v1.json").exists()


def test_onnx_templates_match_dlib_on_faces_of_every_data_set(
    export: OnnxExport, data_faces: list[AlignedFace], reference_templates: list[Template]
) -> None:
    assert len(data_faces) >= 25
    ref = np.stack([t.vector for t in reference_templates]).astype(np.float64)
    fast = np.stack([t.vector for t in make_embedder(export.card).embed(data_faces)])
    cos = np.sum(ref * fast, axis=1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(fast, axis=1)
    assert cos.min() >= PARITY_MIN_COSINE, f"worst cosine {cos.min()}"


def test_scores_and_decisions_unchanged_between_runtimes(
    export: OnnxExport,
    dlib_card: ModelCard,
    data_faces: list[AlignedFace],
    reference_templates: list[Template],
) -> None:
    ref = reference_templates
    fast = make_embedder(export.card).embed(data_faces)
    assert all(t.model_id == "dlib-resnet-v1" for t in fast)
    for i, j in combinations(range(len(data_faces)), 2):
        d_ref = decide(ref[i], ref[j], dlib_card, 1e-3)
        d_fast = decide(fast[i], fast[j], export.card, 1e-3)
        assert abs(d_ref.score - d_fast.score) < 2e-4
        assert d_ref.outcome is d_fast.outcome
        # templates are interchangeable: a dlib template against an ONNX one
        assert abs(decide(ref[i], fast[j], dlib_card, 1e-3).score - d_ref.score) < 2e-4


def test_batched_onnx_equals_one_at_a_time(
    export: OnnxExport, data_faces: list[AlignedFace]
) -> None:
    emb = OnnxEmbedder(export.card, threads=1)
    faces = data_faces[:9]
    together = np.stack([t.vector for t in emb.embed(faces)])
    alone = np.stack([emb.embed([f])[0].vector for f in faces])
    assert np.abs(together - alone).max() < 1e-5


def test_worker_engine_runs_onnx_on_one_thread(export: OnnxExport) -> None:
    for settings in (Settings(model_dir=export.card_path.parent), Settings()):
        emb = worker_engine(settings).embedder
        assert isinstance(emb, OnnxEmbedder)
        assert emb._session.get_session_options().intra_op_num_threads == 1
    # dlib's reference runtime when asked for
    assert not isinstance(worker_engine(Settings(runtime="dlib")).embedder, OnnxEmbedder)
