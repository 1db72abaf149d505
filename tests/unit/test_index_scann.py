"""ScaNN specifics beyond the contract suite: erasure rewrites ScaNN's own arrays, training
leaves no one's template behind, damaged files and too-small training sets are refused.

Real ORL dlib templates (the session fixture), 16 leaves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceledger.errors import IntegrityError, InvalidArgument
from faceledger.index import ExactIndex

pytest.importorskip("scann", reason="ScaNN wheels exist for Linux x86-64 only")
from faceledger.index.scann_index import ScannIndex

MODEL = "dlib-resnet-v1"


@pytest.fixture(scope="module")
def trained(orl_templates: Any) -> ScannIndex:
    index = ScannIndex(128, MODEL, leaves=4, leaves_to_search=4, reorder=100, shortlist=24)
    index.train(orl_templates.vectors)
    return index


def scann_rows(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k.startswith("scann_array_")}


def test_training_keeps_only_the_anchor(
    trained: ScannIndex, orl_templates: Any, tmp_path: Path
) -> None:
    fresh = trained.trained_copy()
    assert len(fresh) == 0 and fresh.search(orl_templates.vectors[:2], 3).row(0) == []
    fresh.save(tmp_path / "empty.index")
    (anchor,) = scann_rows(tmp_path / "empty.index")["scann_array_dataset"]  # one row only
    assert float(np.max(orl_templates.vectors @ anchor)) < 0.999  # no one's template


def test_removal_rewrites_scann_arrays_and_saved_file(
    trained: ScannIndex, orl_templates: Any, tmp_path: Path
) -> None:
    vecs = orl_templates.vectors
    ids = np.arange(vecs.shape[0], dtype=np.int64) + 10
    index = trained.trained_copy()
    index.add(ids, vecs)
    gone = ids[:40]  # subjects s1..s4
    assert index.remove(gone) == 40
    index.save(tmp_path / "g.index")
    rows = scann_rows(tmp_path / "g.index")
    floats = rows["scann_array_dataset"]
    assert floats.shape[0] == ids.size - 40 + 1  # the anchor plus every live template
    for name in ("scann_array_hashed_dataset", "scann_array_hashed_dataset_soar"):
        assert rows[name].shape[0] == floats.shape[0]
    assert rows["scann_array_datapoint_to_token"].shape == (2 * floats.shape[0],)
    # ScaNN re-normalises what it stores, so compare values, not bytes
    nearest_removed = (floats @ vecs[:40].T).max()
    nearest_kept = (floats @ vecs[40:].T).max(axis=0)
    assert nearest_removed < 0.9999 and (nearest_kept > 0.99999).all()
    again = ScannIndex.load(tmp_path / "g.index")
    oracle = ExactIndex(128, MODEL)
    oracle.add(ids[40:], vecs[40:])
    got, want = again.search(vecs, 10), oracle.search(vecs, 10)
    np.testing.assert_array_equal(got.ids, want.ids)


def test_small_first_add_and_damaged_files_are_refused(
    trained: ScannIndex, orl_templates: Any, tmp_path: Path
) -> None:
    untrained = ScannIndex(128, MODEL, leaves=16, leaves_to_search=4)
    with pytest.raises(InvalidArgument):
        untrained.add(np.arange(50), orl_templates.vectors[:50])  # 16 leaves need 800
    assert len(untrained) == 0
    index = trained.trained_copy()
    index.add(np.arange(100), orl_templates.vectors[:100])
    index.save(tmp_path / "g.index")
    with np.load(tmp_path / "g.index", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["scann_array_hashed_dataset"] = arrays["scann_array_hashed_dataset"][:-1]
    with open(tmp_path / "bad.index", "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        ScannIndex.load(tmp_path / "bad.index")


def test_an_add_that_fails_inside_scann_is_undone(trained: ScannIndex, orl_templates: Any) -> None:
    vecs = orl_templates.vectors
    index = trained.trained_copy()
    index.add(np.arange(200), vecs[:200])
    before = index.search(vecs, 10)

    class HalfThenFail:
        """The real searcher, whose insert takes half the batch and then fails (ScaNN's own
        failure, which cannot be provoked from outside, is simulated here)."""

        def __init__(self, real: Any) -> None:
            self.real = real

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

        def upsert(self, docids: Any, batch: Any, size: int) -> None:
            self.real.upsert(docids[:50], batch[:50], 50)
            raise RuntimeError("ScaNN gave up halfway")

    index._searcher = HalfThenFail(index._searcher)
    with pytest.raises(RuntimeError, match="halfway"):
        index.add(np.arange(200, 300), vecs[200:300])
    assert len(index) == 200 and not index.contains(np.arange(200, 300)).any()
    assert int(index._searcher.size()) == 201  # the anchor and the 200 stored
    after = index.search(vecs, 10)
    np.testing.assert_array_equal(after.ids, before.ids)
    index.add(np.arange(200, 300), vecs[200:300])  # the next add lines up again
    assert len(index) == 300 and index.search(vecs[250:251], 1).ids[0, 0] == 250
