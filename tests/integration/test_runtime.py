"""The default runtime: dlib's weights as an ONNX graph, built on first use into a per-user
cache, its sha256 checked on every load, rebuilt when missing or wrong; dlib's own runtime as
the reference and the fallback (``faceledger.embed.runtime``). Real weights, real faces."""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path

import numpy as np
import pytest

from faceledger import Engine, Settings
from faceledger.embed.dlib_export import ONNX_FILENAME, builtin_dlib_card
from faceledger.embed.dlib_resnet import DlibEmbedder
from faceledger.embed.onnx import OnnxEmbedder
from faceledger.embed.runtime import MANIFEST, choose_runtime, graph_dir
from faceledger.errors import ModelError

SAMPLE = Path(__file__).resolve().parents[2] / "src/faceledger/sample"


def _settings(cache: Path, **kw: object) -> Settings:
    return Settings(cache_dir=cache, **kw)  # type: ignore[arg-type]


def test_first_use_builds_then_loads_the_cached_graph(tmp_path: Path) -> None:
    card = builtin_dlib_card()
    first = choose_runtime(card, _settings(tmp_path))
    assert first.runtime == "onnxruntime" and "built and cached" in first.note
    folder = graph_dir(card, tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["source_sha256"] == card.file("embedder").sha256
    assert manifest["sha256"] == first.card.file("embedder").sha256
    again = choose_runtime(card, _settings(tmp_path))
    assert again.note.startswith("ONNX graph cached") and again.model == first.model
    # the runtime's card keeps the model's id and calibration: templates stay interchangeable
    assert again.card.id == card.id and again.card.calibration == card.calibration


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "delete"])
def test_a_damaged_cache_is_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    card = builtin_dlib_card()
    good = choose_runtime(card, _settings(tmp_path))
    model = graph_dir(card, tmp_path) / ONNX_FILENAME
    data = model.read_bytes()
    if damage == "truncate":
        model.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        model.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    elif damage == "manifest":
        (model.parent / MANIFEST).write_text('{"sha256": "' + "0" * 64 + '"}')
    else:
        model.unlink()
    rebuilt = choose_runtime(card, _settings(tmp_path))
    assert "built and cached" in rebuilt.note, rebuilt.note
    assert rebuilt.model == good.model and model.read_bytes() == data
    if damage in ("truncate", "flip", "manifest"):
        assert "rebuilding" in caplog.text


def test_default_engine_runs_onnx_with_dlibs_templates(tmp_path: Path) -> None:
    fast = Engine(_settings(tmp_path))
    ref = Engine(_settings(tmp_path, runtime="dlib"))
    assert isinstance(fast.embedder, OnnxEmbedder) and isinstance(ref.embedder, DlibEmbedder)
    assert fast.runtime is not None and fast.runtime.runtime == "onnxruntime"
    for name in ("001_neutral.jpg", "042_smiling.jpg"):
        a, b = fast.embed(SAMPLE / name).template, ref.embed(SAMPLE / name).template
        assert a is not None and b is not None and a.model_id == b.model_id
        assert float(np.dot(a.vector, b.vector)) > 1 - 1e-4


def test_jitter_and_explicit_dlib_select_dlibs_runtime(tmp_path: Path) -> None:
    card = builtin_dlib_card()
    assert choose_runtime(card, _settings(tmp_path, jitter=2)).runtime == "dlib"
    assert choose_runtime(card, _settings(tmp_path, runtime="dlib")).runtime == "dlib"
    assert not graph_dir(card, tmp_path).exists()  # nothing built for dlib's runtime


def test_without_onnxruntime_auto_falls_back_and_onnx_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    card = builtin_dlib_card()
    choice = choose_runtime(card, _settings(tmp_path))
    assert choice.runtime == "dlib" and "fallback" in choice.note
    assert "onnxruntime cannot be imported" in caplog.text
    with pytest.raises(ModelError, match="onnxruntime"):
        choose_runtime(card, _settings(tmp_path, runtime="onnx"))


def test_unwritable_cache_builds_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    choice = choose_runtime(builtin_dlib_card(), _settings(blocker / "cache"))
    assert choice.runtime == "onnxruntime" and "built in memory" in choice.note
    assert choice.model is not None


def _build(cache: str) -> str:
    return choose_runtime(builtin_dlib_card(), Settings(cache_dir=Path(cache))).card.files[0].sha256


def test_processes_building_at_once_agree(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        shas = pool.map(_build, [str(tmp_path)] * 2)
    assert shas[0] == shas[1]
    manifest = json.loads((graph_dir(builtin_dlib_card(), tmp_path) / MANIFEST).read_text())
    assert manifest["sha256"] == shas[0]
    assert not list(graph_dir(builtin_dlib_card(), tmp_path).glob(".*.tmp"))
