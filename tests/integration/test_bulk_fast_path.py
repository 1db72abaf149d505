"""The bulk path's shortcuts keep its results: prominent-face detection, chunked embedding."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceledger import Engine, Settings
from faceledger.batch import CHUNK, EmbedOutcome, embed_many, embed_one, embed_paths


def _portraits(data_dir: Path) -> list[Path]:
    return [
        data_dir / "london/images/012_neutral.jpg",
        data_dir / "london/images/037_smiling.jpg",
        data_dir
        / "utkface_subset/images"
        / sorted(p.name for p in (data_dir / "utkface_subset/images").iterdir())[5],
        data_dir / "orl/s7/3.pgm",
    ]


def test_prominent_detection_finds_the_largest_face_of_the_full_search(
    engine: Engine, data_dir: Path
) -> None:
    for path in _portraits(data_dir):
        px = engine.load(path).pixels
        full = engine.detector.detect(px)
        quick = engine.detector.detect_prominent(px)
        assert full and quick, path
        assert quick[0].box.iou(full[0].box) > 0.6, path
        ied_full = full[0].landmarks.inter_eye_distance
        assert quick[0].landmarks.inter_eye_distance == pytest.approx(ied_full, rel=0.1)


def test_prominent_detection_falls_back_to_full_search_for_a_small_face(
    engine: Engine, data_dir: Path
) -> None:
    # a 92x112 ORL face on a 1200 px canvas: too small for the 320 px first pass
    face = Image.open(data_dir / "orl/s5/2.pgm").convert("RGB")
    canvas = Image.new("RGB", (1200, 1000), (128, 128, 128))
    canvas.paste(face, (700, 400))
    px = np.asarray(canvas, dtype=np.uint8).copy()
    full = engine.detector.detect(px)
    quick = engine.detector.detect_prominent(px)
    assert len(full) == 1
    assert [d.box for d in quick] == [d.box for d in full]
    assert 650 < quick[0].box.center.x < 850


def test_embed_many_equals_embed_one_and_keeps_failures_in_place(
    engine: Engine, data_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (90, 90, 90)).save(blank)
    paths = [str(p) for p in _portraits(data_dir)[:2]] + [str(broken), str(blank)]
    paths.append(str(data_dir / "orl/s9/1.pgm"))
    together = embed_many(engine, paths)
    alone = [embed_one(engine, p) for p in paths]
    assert [o.path for o in together] == paths
    assert [o.error for o in together] == [o.error for o in alone]
    assert [o.error for o in together][2:4] == ["bad_image", "no_face"]
    for a, b in zip(together, alone, strict=True):
        if a.result is None or b.result is None:
            assert a.result is None and b.result is None
            continue
        assert a.result.template is not None and b.result.template is not None
        assert a.sha256 == b.sha256 and a.faces == b.faces
        assert np.abs(a.result.template.vector - b.result.template.vector).max() < 1e-5


def test_bulk_enrolment_matches_single_image_enrolment(engine: Engine, data_dir: Path) -> None:
    paths = _portraits(data_dir)
    bulk = embed_paths(paths, engine.settings, enrolment=True, workers=2)
    for path, out in zip(paths, bulk, strict=True):
        single = engine.embed(path, enrolment=True).template
        assert out.result is not None and out.result.template is not None and single is not None
        # the prominent-face pass gives a slightly different box, hence landmarks and chip
        assert out.result.template.similarity(single) > 0.99, path


def test_bulk_enrolment_with_only_selection_still_sees_every_face(data_dir: Path) -> None:
    group = data_dir / "fr_examples/two_people.jpg"
    settings = Settings(face_selection="only")
    (out,) = embed_paths([group], settings, enrolment=True, workers=1)
    assert out.error == "ambiguous_face"
    assert out.faces == len(Engine(settings).detect(group)) >= 2


def test_chunked_bulk_results_come_back_in_input_order(data_dir: Path) -> None:
    paths = [*sorted((data_dir / "orl/s3").glob("*.pgm")), data_dir / "orl/s4/1.pgm"]
    assert len(paths) % CHUNK != 0 and len(paths) > CHUNK
    seen: list[EmbedOutcome] = []
    outs = embed_paths(paths, Settings(), workers=2, on_done=seen.append)
    assert [o.path for o in outs] == [str(p) for p in paths]
    assert sorted(o.path for o in seen) == sorted(str(p) for p in paths)
    assert sum(o.result is not None for o in outs) >= len(paths) - 1


_AFTER_CNN = """
import sys
import subprocess
import sys
from pathlib import Path
from faceledger import Engine, Settings
from faceledger.batch import embed_paths

def main() -> None:
    orl = Path(sys.argv[1]) / "orl"
    assert Engine(Settings()).detect(orl / "s1/3.pgm")[0].detection.detector == "cnn"
    paths = [orl / "s1/3.pgm", orl / "s2/6.pgm", orl / "s1/1.pgm", orl / "s2/1.pgm"]
    outs = embed_paths(paths, Settings(), workers=2)
    print(" ".join(o.result.detection.detector if o.result else "-" for o in outs))

if __name__ == "__main__":
    main()
"""


def test_workers_started_after_the_cnn_ran_in_the_caller_do_not_hang(
    tmp_path: Path, data_dir: Path
) -> None:
    """dlib's CNN keeps a thread pool; a worker forked from a process that had used it hung in
    its first CNN call. Workers now come from a fork server (run in a subprocess here, so a
    regression fails on the timeout instead of hanging the suite)."""
    script = tmp_path / "after_cnn.py"
    script.write_text(_AFTER_CNN)
    r = subprocess.run(
        [sys.executable, str(script), str(data_dir)], capture_output=True, text=True, timeout=240
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cnn", "cnn", "hog", "hog"]
