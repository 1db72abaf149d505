"""Model cards: checksums, local ONNX models, refusing to mix models' templates."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from faceledger import Engine, Settings
from faceledger.errors import ModelError, ModelFileError, ModelMismatch
from faceledger.match import decide
from faceledger.models import ModelRegistry


def test_builtin_card_files_verify_and_calibration_is_present() -> None:
    card = ModelRegistry().get("dlib-resnet-v1")
    path = card.file("embedder").verified_path()
    assert path.name == "dlib_face_recognition_resnet_model_v1.dat"
    assert card.dimension == 128 and card.calibration is not None
    assert card.calibration.overall.impostor_pairs > 500_000


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    card = ModelRegistry().get("dlib-resnet-v1")
    weights = tmp_path / "weights.dat"
    shutil.copy(card.file("embedder").locate(), weights)
    with weights.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    data = card.to_json()
    data["id"] = "tampered"
    data["files"] = [
        {
            "role": "embedder",
            "filename": "weights.dat",
            "sha256": card.file("embedder").sha256,
            "path": "weights.dat",
        }
    ]
    (tmp_path / "tampered.json").write_text(json.dumps(data))
    engine = Engine(Settings(model_id="tampered", model_dir=tmp_path))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        _ = engine.embedder


def test_unknown_model_and_malformed_card(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model"):
        ModelRegistry(tmp_path).get("nope")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read model card"):
        ModelRegistry(tmp_path).get("broken")


def _tiny_onnx(path: Path, size: int, dim: int) -> None:
    """A stand-in ONNX embedder (no ArcFace weights can be downloaded here): a fixed random
    projection of the NCHW chip, enough to exercise the real onnxruntime path end to end."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w = rng.normal(size=(3 * size * size, dim)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["embedding"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", dim])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_onnx_model_from_local_path_with_checksum(tmp_path: Path, data_dir: Path) -> None:
    pytest.importorskip("onnxruntime")
    size, dim = 112, 32
    weights = tmp_path / "tiny.onnx"
    _tiny_onnx(weights, size, dim)
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    # ArcFace-style 5-point reference in a 112 px chip, in dlib's landmark order
    card = {
        "id": "tiny-onnx",
        "version": "0",
        "name": "tiny test projection",
        "backend": "onnx",
        "dimension": dim,
        "input": {
            "size": size,
            "reference": [[78, 50], [62, 51], [34, 50], [50, 51], [56, 74]],
            "mean": 127.5,
            "std": 127.5,
        },
        "files": [
            {"role": "embedder", "filename": "tiny.onnx", "sha256": sha, "path": "tiny.onnx"}
        ],
        "calibration": None,
    }
    (tmp_path / "tiny-onnx.json").write_text(json.dumps(card))
    onnx_engine = Engine(Settings(model_id="tiny-onnx", model_dir=tmp_path))
    face = onnx_engine.embed(data_dir / "london/images/001_neutral.jpg")
    assert face.template is not None
    assert face.template.model_id == "tiny-onnx" and face.template.dimension == dim
    assert np.linalg.norm(face.template.vector) == pytest.approx(1.0, abs=1e-5)

    dlib_face = Engine().embed(data_dir / "london/images/001_neutral.jpg")
    assert dlib_face.template is not None
    with pytest.raises(ModelMismatch):
        face.template.similarity(dlib_face.template)
    with pytest.raises(ModelMismatch):
        decide(face.template, dlib_face.template, onnx_engine.card, 1e-3)

    weights.write_bytes(weights.read_bytes() + b"x")
    with pytest.raises(ModelFileError, match="checksum"):
        _ = Engine(Settings(model_id="tiny-onnx", model_dir=tmp_path)).embedder
