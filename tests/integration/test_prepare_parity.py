"""The bulk path and ``Engine.embed`` share :meth:`Engine.prepare`: same face, same gates, same
template. Real photographs; a drift in selection, quality or alignment would show here."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from faceledger import Engine
from faceledger.batch import embed_many, embed_one
from faceledger.errors import AmbiguousFace, QualityRejected


def _london_sample(data_dir: Path) -> list[str]:
    """Five London portraits spread over the set (both expressions)."""
    images = sorted((data_dir / "london" / "images").glob("*.jpg"))
    return [str(p) for p in images[::41]]


def test_batch_embedding_gives_the_templates_of_engine_embed(
    engine: Engine, data_dir: Path
) -> None:
    paths = _london_sample(data_dir)
    assert len(paths) == 5
    together = embed_many(engine, paths)
    for path, out in zip(paths, together, strict=True):
        single = engine.embed(path)
        alone = embed_one(engine, path)
        assert out.error is None and alone.error is None, path
        assert out.result is not None and alone.result is not None
        assert single.template is not None
        assert out.result.template is not None and alone.result.template is not None
        # same face chosen, same quality report: the steps before the embedder agree exactly
        assert out.result.detection == single.detection == alone.result.detection, path
        assert out.result.quality == single.quality == alone.result.quality, path
        # one chip through the same embedder: bit for bit the same template
        assert np.array_equal(alone.result.template.vector, single.template.vector), path
        # in a batch of five the network may round differently, never by more than this
        gap = np.abs(out.result.template.vector - single.template.vector).max()
        assert gap < 1e-5, path
        assert out.result.template.model_id == single.template.model_id


def test_enrolment_gate_refuses_the_same_face_with_the_same_reasons_on_both_paths(
    engine: Engine, data_dir: Path, tmp_path: Path
) -> None:
    blurred = tmp_path / "blurred.png"
    src = Image.open(data_dir / "london/images/010_neutral.jpg")
    src.filter(ImageFilter.GaussianBlur(6)).save(blurred)
    # "only": bulk enrolment then runs the full detector too (with "largest" it takes the
    # quicker prominent-face pass, whose slightly different box moves the quality score)
    only = Engine(
        replace(engine.settings, face_selection="only"),
        card=engine.card,
        detector=engine.detector,
        embedder=engine.embedder,
    )
    with pytest.raises(QualityRejected) as info:
        only.embed(blurred, enrolment=True)
    assert "blurry" in info.value.reasons
    bulk = embed_one(only, str(blurred), enrolment=True)
    assert bulk.result is None and bulk.faces == 1
    assert bulk.error == "quality_rejected"
    assert bulk.message == info.value.message
    # as a probe the same face is embedded, only flagged
    probe = embed_one(only, str(blurred))
    assert probe.result is not None and "blurry" in probe.result.quality.flags
    assert probe.result.quality == only.embed(blurred).quality


def test_prepare_follows_the_face_selection_it_is_given(engine: Engine, data_dir: Path) -> None:
    img = engine.load(data_dir / "fr_examples/two_people.jpg")
    detections = engine.detector.detect(img.pixels)
    assert len(detections) >= 2
    with pytest.raises(AmbiguousFace):
        engine.prepare(img, detections, selection="only")
    largest = engine.prepare(img, detections, selection="largest")
    assert largest.detection.box.area == max(d.box.area for d in detections)
    assert largest.face.chip.shape[:2] == (engine.card.align.size, engine.card.align.size)
    central = engine.prepare(img, detections, selection="central")
    (template,) = engine.embedder.embed([central.face])
    single = engine.embed(img, selection="central")
    result = central.result(template)
    assert result.detection == single.detection and result.quality == single.quality
    assert single.template is not None and result.template is template
    assert np.array_equal(template.vector, single.template.vector)
