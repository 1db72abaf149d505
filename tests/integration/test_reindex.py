"""A gallery that outgrows its index kind is re-indexed from the store, and nothing is lost.

Real ORL templates plus face-like synthetic ones (fitted to them) make a 2,000-template
gallery in the store. The size threshold above which faiss-flat gives way to HNSW
(``FLAT_MAX``, 50,000 in production) is lowered so that this gallery crosses it; everything
else (store, enrolment, build, swap, files) is the real code path.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from faceledger import Settings
from faceledger.api.concurrency import LockedIndexManager
from faceledger.config import QualityGates
from faceledger.errors import Conflict
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.gallery.indexes import IndexManager
from faceledger.index import ExactIndex, IndexChoice, VectorIndex, load_index
from faceledger.index import factory as index_factory
from faceledger.index.synthetic import FaceLikeModel
from faceledger.store import Gallery, NewTemplate
from faceledger.types import Template
from faceledger.usecases import EnrolFolder, EraseSubject, enrol_folder, erase_subject
from tests.conftest import TemplateSet

MODEL = "dlib-resnet-v1"
SMALL_FLAT_MAX = 500
"""With this, a gallery above 1,000 templates has outgrown faiss-flat (2 x FLAT_MAX)."""


def _sha(i: int) -> str:
    return hashlib.sha256(f"template {i}".encode()).hexdigest()


def _fill(ws: Workspace, gallery: Gallery, orl: TemplateSet, n_synthetic: int = 1600) -> None:
    real = orl.vectors
    subjects = orl.subjects
    rng = np.random.default_rng(11)
    model = FaceLikeModel.fit(real, subjects)
    synth = model.templates(
        model.identities(n_synthetic // 2, rng), np.repeat(np.arange(n_synthetic // 2), 2), rng
    ).astype(np.float32)
    names = [*subjects, *[f"synthetic-{i // 2}" for i in range(n_synthetic)]]
    vectors = np.concatenate([real, synth])
    ids = {
        name: ws.store.add_subject(gallery.id, name, enrolled_by="t").id
        for name in dict.fromkeys(names)
    }
    ws.store.add_templates(
        [
            NewTemplate(ids[name], _sha(i), Template(MODEL, vectors[i]))
            for i, name in enumerate(names)
        ]
    )


def _workspace(tmp: Path) -> Workspace:
    gates = QualityGates(min_inter_eye_px=8.0, min_score=20.0)
    ws = open_workspace(Settings(data_dir=tmp, gates=gates))
    return ws


def _oracle(ws: Workspace, gallery: Gallery) -> ExactIndex:
    ex = ExactIndex(128, MODEL)
    for batch in ws.store.iter_templates(gallery.id):
        ex.add(batch.ids, batch.vectors)
    return ex


def _assert_serves_the_store(
    ws: Workspace, gallery: Gallery, idx: VectorIndex, q: npt.NDArray[np.float32]
) -> None:
    np.testing.assert_array_equal(idx.ids(), ws.store.template_ids(gallery.id))
    got = idx.search(q, 10)
    want = _oracle(ws, gallery).search(q, 10)
    np.testing.assert_array_equal(got.ids, want.ids)


@pytest.fixture
def grown(tmp_path: Path, orl_templates: TemplateSet) -> Iterator[tuple[Workspace, Gallery]]:
    """A 2,000-template gallery whose index was opened (as faiss-flat) at that size."""
    ws = _workspace(tmp_path)
    g = ws.store.create_gallery("g", model_id=MODEL, created_by="t", legal_basis="consent")
    _fill(ws, g, orl_templates)
    assert ws.indexes.get(g, 128).kind == "faiss-flat"
    yield ws, g
    ws.close()


def test_bulk_enrolment_rebuilds_an_outgrown_index_as_the_kind_its_size_calls_for(
    grown: tuple[Workspace, Gallery],
    orl_templates: TemplateSet,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws, g = grown
    monkeypatch.setattr(index_factory, "FLAT_MAX", SMALL_FLAT_MAX)
    csv = tmp_path / "more.csv"
    images = sorted((data_dir / "london" / "images").iterdir())[:3]
    csv.write_text("image,subject\n" + "".join(f"{p},london-{i}\n" for i, p in enumerate(images)))
    rep = enrol_folder(ws, local_operator(ws, "t"), EnrolFolder("g", csv))
    assert rep.enrolled == 3
    assert rep.reindexed is not None
    assert (rep.reindexed["before"], rep.reindexed["after"]) == ("faiss-flat", "faiss-hnsw")
    assert rep.reindexed["size"] == 2003 == ws.store.template_ids(g.id).size
    assert rep.as_json()["reindexed"] == rep.reindexed
    # the new kind is what the gallery records and what a new process loads
    g = ws.store.get_gallery(g.id)
    assert g.index_description["kind"] == "faiss-hnsw"
    idx = ws.indexes.get(g, 128)
    assert idx.kind == "faiss-hnsw"
    q = orl_templates.vectors[::7]
    _assert_serves_the_store(ws, g, idx, q)
    assert load_index(ws.indexes.folder / f"gallery-{g.id}.index").kind == "faiss-hnsw"
    # once rebuilt, the same size asks for nothing more
    assert ws.indexes.maybe_reindex(g, 128) is None


class _WritesDuringBuild(IndexManager):
    """Enrols one template and removes another after the build took its snapshot: the
    interleaving a background re-index meets when enrolment goes on meanwhile."""

    armed = False
    victim: int = -1
    newcomer: int = -1

    def _build(self, gallery: Gallery, dimension: int, choice: IndexChoice) -> VectorIndex:
        built = super()._build(gallery, dimension, choice)
        if not self.armed:
            return built
        self.armed = False
        sid = self.store.add_subject(gallery.id, "late", enrolled_by="t").id
        vec = np.random.default_rng(3).standard_normal(128).astype(np.float32)
        (self.newcomer,) = self.store.add_templates(
            [NewTemplate(sid, _sha(10**6), Template(MODEL, vec / np.linalg.norm(vec)))]
        )
        self.victim = int(self.store.template_ids(gallery.id)[5])
        self.store.delete_template(self.victim)
        return built


def test_templates_enrolled_or_removed_during_the_build_are_reconciled_at_the_swap(
    grown: tuple[Workspace, Gallery], orl_templates: TemplateSet
) -> None:
    ws, g = grown
    mgr = _WritesDuringBuild(ws.store, ws.indexes.folder)
    assert mgr.get(g, 128).kind == "faiss-flat"  # opened before the hook is armed
    mgr.armed = True
    choice = IndexChoice("faiss-hnsw", {"m": 16, "ef_search": 128, "storage": "sq8"}, "test")
    report = mgr.reindex(g, 128, choice)
    assert report is not None and report.after == "faiss-hnsw"
    idx = mgr.get(g, 128)
    held = set(idx.ids().tolist())
    assert mgr.newcomer in held and mgr.victim not in held
    _assert_serves_the_store(ws, g, idx, orl_templates.vectors[::9])
    assert mgr.sync(g, 128).agreed


def test_service_manager_reindexes_in_the_background_while_searches_go_on(
    grown: tuple[Workspace, Gallery], orl_templates: TemplateSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, g = grown
    ws.indexes.save_all()
    mgr = LockedIndexManager.replacing(ws.indexes)
    ws.indexes = mgr
    q = orl_templates.vectors[::11]
    before = mgr.get(g, 128).search(q, 10).ids
    monkeypatch.setattr(index_factory, "FLAT_MAX", SMALL_FLAT_MAX)
    started = time.monotonic()
    assert mgr.maybe_reindex(g, 128) is None  # returns at once; the build runs in a thread
    searched = 0
    while mgr._reindexing or any(w.is_alive() for w in mgr._workers.values()):
        # the old index answers meanwhile, with the same candidates
        np.testing.assert_array_equal(mgr.get(g, 128).search(q, 10).ids, before)
        searched += 1
        if time.monotonic() - started > 300:  # a hang guard, not a timing assertion
            break
    assert mgr.wait_reindexing(timeout=300)
    assert searched >= 1
    assert mgr._current(g, 128).kind == "faiss-hnsw"
    _assert_serves_the_store(ws, g, mgr.get(g, 128), q)
    # an explicit re-index while one is claimed is refused, not run twice
    mgr._claim(g)
    try:
        with pytest.raises(Conflict):
            mgr.reindex(g, 128, IndexChoice("faiss-flat", {}, "test"))
    finally:
        mgr._release(g)


@pytest.mark.skipif(
    not index_factory.scann_available(), reason="ScaNN wheels exist for Linux x86-64 only"
)
def test_a_gallery_past_the_scann_threshold_is_rebuilt_as_scann_and_erases_through_it(
    grown: tuple[Workspace, Gallery], orl_templates: TemplateSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, g = grown
    monkeypatch.setattr(index_factory, "FLAT_MAX", SMALL_FLAT_MAX)
    monkeypatch.setattr(index_factory, "SCANN_MIN", 1500)  # 400,000 in production
    report = ws.indexes.maybe_reindex(g, 128)
    assert report is not None and (report.before, report.after) == ("faiss-flat", "scann")
    g = ws.store.get_gallery(g.id)
    assert g.index_description["kind"] == "scann"
    idx = ws.indexes.get(g, 128)
    np.testing.assert_array_equal(idx.ids(), ws.store.template_ids(g.id))
    q = orl_templates.vectors
    got, want = idx.search(q, 10).ids, _oracle(ws, g).search(q, 10).ids
    recall = np.mean([np.intersect1d(a, b).size / 10 for a, b in zip(got, want, strict=True)])
    assert recall >= 0.95, recall  # 8 of 40 leaves searched: approximate, but close
    assert (got[:, 0] == want[:, 0]).mean() >= 0.99
    # erasing a person goes through the ScaNN index and its saved file
    operator = local_operator(ws, "t")
    receipt = erase_subject(ws, operator, EraseSubject("g", "s1", "test erasure")).receipt
    assert len(receipt.template_ids) == 10
    gone = np.array(receipt.template_ids, dtype=np.int64)
    path = ws.indexes.folder / f"gallery-{g.id}.index"
    reloaded = load_index(path)
    assert reloaded.kind == "scann" and not reloaded.contains(gone).any()
    np.testing.assert_array_equal(reloaded.ids(), ws.store.template_ids(g.id))
    with np.load(path, allow_pickle=False) as z:
        floats = z["scann_array_dataset"]
    assert (floats @ q[:10].T).max() < 0.9999  # s1's ten templates are gone from ScaNN's copy
    assert ws.indexes.maybe_reindex(g, 128) is None
