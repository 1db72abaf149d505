"""ScaNN specifics beyond the contract suite: erasure rewrites ScaNN's own arrays, training
leaves no one's template behind, damaged files and too-small training sets are refused.

Real ORL dlib templates (the session fixture), two shards of 4 leaves.
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
    index = ScannIndex(
        128, MODEL, shards=2, leaves=4, leaves_to_search=4, reorder=100, shortlist=24
    )
    index.train(orl_templates.vectors)
    return index


def scann_rows(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """ScaNN's per-point arrays in a saved index, every shard's rows together."""
    out: dict[str, list[np.ndarray[Any, Any]]] = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            name = key.split(".", 1)[-1]  # drop the "shardN." prefix
            if name.startswith("scann_array_"):
                out.setdefault(name, []).append(z[key])
    return {name: np.concatenate(parts) for name, parts in out.items()}


def test_training_keeps_only_the_anchor(
    trained: ScannIndex, orl_templates: Any, tmp_path: Path
) -> None:
    fresh = trained.trained_copy()
    assert len(fresh) == 0 and fresh.search(orl_templates.vectors[:2], 3).row(0) == []
    fresh.save(tmp_path / "empty.index")
    anchors = scann_rows(tmp_path / "empty.index")["scann_array_dataset"]
    assert anchors.shape == (2, 128)  # one row per shard, nothing of the training sample
    assert float(np.max(orl_templates.vectors @ anchors.T)) < 0.999  # no one's template


def test_removal_rewrites_scann_arrays_and_saved_file(
    trained: ScannIndex, orl_templates: Any, tmp_path: Path
) -> None:
    vecs = orl_templates.vectors
    ids = np.arange(vecs.shape[0], dtype=np.int64) + 10
    index = trained.trained_copy()
    index.add(ids[:200], vecs[:200])  # each add goes to the emptier shard: one each
    index.add(ids[200:], vecs[200:])
    removed = np.zeros(ids.size, dtype=bool)
    removed[:20] = removed[200:220] = True  # s1, s2 in one shard; s21, s22 in the other
    assert index.remove(ids[removed]) == 40
    index.save(tmp_path / "g.index")
    rows = scann_rows(tmp_path / "g.index")
    floats = rows["scann_array_dataset"]
    assert floats.shape[0] == ids.size - 40 + 2  # two anchors plus every live template
    for name in ("scann_array_hashed_dataset", "scann_array_hashed_dataset_soar"):
        assert rows[name].shape[0] == floats.shape[0]
    assert rows["scann_array_datapoint_to_token"].shape == (2 * floats.shape[0],)
    # ScaNN re-normalises what it stores, so compare values, not bytes
    nearest_removed = (floats @ vecs[removed].T).max()
    nearest_kept = (floats @ vecs[~removed].T).max(axis=0)
    assert nearest_removed < 0.9999 and (nearest_kept > 0.99999).all()
    again = ScannIndex.load(tmp_path / "g.index")
    oracle = ExactIndex(128, MODEL)
    oracle.add(ids[~removed], vecs[~removed])
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
    key = "shard0.scann_array_hashed_dataset"
    arrays[key] = arrays[key][:-1]
    with open(tmp_path / "bad.index", "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        ScannIndex.load(tmp_path / "bad.index")
