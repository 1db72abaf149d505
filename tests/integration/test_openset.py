"""Normalised open-set search on real templates: one path for ``search`` and ``eval identify``.

The gallery (London neutral images + ORL s1–s35, three images each: 207 templates, above the
shipped calibration's smallest normalised gallery of 200) is stored from the session's real
templates, so only the probe images are embedded here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from faceledger import Settings
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.gallery.evaluation import GallerySearch
from faceledger.gallery.ranking import rank
from faceledger.match.gallery_calibration import GalleryCalibration
from faceledger.match.identify import comparison_fmr_for, operating_point
from faceledger.match.normalise import Cohort, normalise, select_evenly
from faceledger.models import ModelRegistry
from faceledger.store import NewTemplate
from faceledger.types import Template
from faceledger.usecases import SearchRequest, search
from tests.conftest import TemplateSet

MODEL = "dlib-resnet-v1"


@dataclasses.dataclass(frozen=True)
class Enrolled:
    vectors: np.ndarray
    subjects: list[str]


def _gallery(london: TemplateSet, orl: TemplateSet) -> Enrolled:
    rows: list[tuple[np.ndarray, str]] = []
    for path, subj, vec in zip(london.paths, london.subjects, london.vectors, strict=True):
        if path.endswith("_neutral.jpg"):
            rows.append((vec, f"london:{subj}"))
    for path, subj, vec in zip(orl.paths, orl.subjects, orl.vectors, strict=True):
        if int(subj[1:]) <= 35 and Path(path).stem in {"1", "2", "3"}:
            rows.append((vec, f"orl:{subj}"))
    return Enrolled(np.stack([v for v, _ in rows]), [s for _, s in rows])


def _workspace(tmp: Path, enrolled: Enrolled, **kw: object) -> Workspace:
    ws = open_workspace(dataclasses.replace(Settings(data_dir=tmp), **kw))
    g = ws.store.create_gallery("g", model_id=MODEL, created_by="t", legal_basis="consent")
    ids: dict[str, int] = {}
    news = []
    for i, (vec, subj) in enumerate(zip(enrolled.vectors, enrolled.subjects, strict=True)):
        if subj not in ids:
            ids[subj] = ws.store.add_subject(g.id, subj, enrolled_by="t").id
        news.append(NewTemplate(ids[subj], f"{i:064x}", Template(MODEL, vec.astype(np.float32))))
    ws.store.add_templates(news)
    return ws


def _reopen(data_dir: Path, **kw: object) -> Workspace:
    return open_workspace(dataclasses.replace(Settings(data_dir=data_dir), **kw))


@pytest.fixture(scope="module")
def enrolled(london_templates: TemplateSet, orl_templates: TemplateSet) -> Enrolled:
    e = _gallery(london_templates, orl_templates)
    assert len(e.subjects) >= 200
    return e


def test_search_normalises_and_eval_identify_scores_the_same(
    tmp_path: Path, data_dir: Path, enrolled: Enrolled
) -> None:
    card = ModelRegistry().get(MODEL)
    assert card.openset is not None and card.openset.cohort_size <= len(enrolled.subjects)
    ws = _workspace(tmp_path / "ws", enrolled)
    me = local_operator(ws, "tester")
    probe = data_dir / "london/images/005_smiling.jpg"
    res = search(ws, me, SearchRequest(probe, ("g",), purpose="test", case_ref="OS-1", fpir=0.1))
    (face,) = res.faces
    assert face.normalisation == "asnorm"
    # the declared threshold is the open-set calibration's for FPIR 0.1 over 207 templates
    n = len(enrolled.subjects)
    assert face.comparison_fmr == pytest.approx(comparison_fmr_for(0.1, n))
    assert face.threshold == pytest.approx(card.openset.threshold_for(face.comparison_fmr))
    top = face.candidates[0]
    assert top.external_id == "london:005" and top.score >= face.threshold
    # honest per-candidate figures: raw similarity, per-comparison FMR, FPIR at this size
    vec = face.face.template.vector  # type: ignore[union-attr]
    row = enrolled.subjects.index("london:005")
    assert top.similarity == pytest.approx(float(enrolled.vectors[row] @ vec), abs=1e-5)
    assert top.fmr.value == pytest.approx(card.openset.fmr_at(top.score).value)
    assert top.fpir == pytest.approx(1 - (1 - top.fmr.value) ** n, rel=1e-6)
    # the same normalisation by hand: cohort = every template (fewer than cohort_max)
    assert n < card.openset.cohort_max
    rows = select_evenly(np.arange(n), card.openset.cohort_max)
    assert rows.size == n
    codes = {s: i for i, s in enumerate(dict.fromkeys(enrolled.subjects))}
    subj = np.array([codes[s] for s in enrolled.subjects])
    cohort = Cohort(enrolled.vectors[rows], subj[rows])
    z, _ = normalise(vec, enrolled.vectors[row : row + 1], subj[row : row + 1], cohort, 50)
    assert top.score == pytest.approx(float(z[0]), abs=1e-5)
    # eval identify's search function ranks this probe identically (one code path)
    search_fn = GallerySearch(Settings(), MODEL)
    ranked = search_fn(enrolled.vectors, enrolled.subjects, vec[None], 5)
    assert ranked[0][0] == (top.external_id, pytest.approx(top.score, abs=1e-6))
    # and declares the threshold `search` applied, which eval identify measures
    declared = search_fn.declare(0.1)
    assert declared.threshold == pytest.approx(face.threshold, abs=1e-9)
    assert declared.normalisation == "asnorm"
    # and the audit entry records how the threshold was derived
    (entry,) = [e for e in ws.audit.entries(operation="search")]
    assert entry.record.details["normalisation"] == "asnorm"
    assert entry.record.threshold == pytest.approx(face.threshold, abs=1e-6)
    ws.close()


def test_nonmated_probe_gets_no_candidate_and_raw_mode_is_cosine(
    tmp_path: Path, data_dir: Path, enrolled: Enrolled
) -> None:
    ws = _workspace(tmp_path / "ws", enrolled)
    me = local_operator(ws, "tester")
    outcomes = [
        search(
            ws,
            me,
            SearchRequest(data_dir / f"orl/s{s}/5.pgm", ("g",), purpose="t", case_ref="OS-2"),
        )
        .faces[0]
        .outcome
        for s in (36, 38, 40)
    ]
    assert outcomes.count("no_candidate") >= 2
    ws.close()
    raw = _workspace(tmp_path / "raw", enrolled, normalisation="none")
    res = search(
        raw,
        local_operator(raw, "t"),
        SearchRequest(data_dir / "orl/s3/9.pgm", ("g",), purpose="t", case_ref="OS-3", fpir=0.1),
    )
    (face,) = res.faces
    assert face.normalisation == "none"
    card = ModelRegistry().get(MODEL)
    op, cal = operating_point(card, "none", 0.1, len(enrolled.subjects))
    assert cal is None and face.threshold == pytest.approx(op.threshold)
    assert all(c.score == pytest.approx(c.similarity) for c in face.candidates)
    assert face.candidates and face.candidates[0].external_id == "orl:s3"
    raw.close()


def test_small_gallery_falls_back_to_cosine_scores(enrolled: Enrolled) -> None:
    small = Enrolled(enrolled.vectors[:50], enrolled.subjects[:50])
    search_fn = GallerySearch(Settings(), MODEL)
    ranked = search_fn(small.vectors, small.subjects, small.vectors[:1], 3)
    assert ranked[0][0][0] == small.subjects[0]
    assert ranked[0][0][1] == pytest.approx(1.0, abs=1e-5)  # cosine of a template with itself
    card = ModelRegistry().get(MODEL)
    op, cal = operating_point(card, "asnorm", 0.01, 50)
    assert cal is None and op.normalisation == "none"


def test_threshold_is_counted_on_the_gallery_when_it_can_be(
    tmp_path: Path, data_dir: Path, enrolled: Enrolled
) -> None:
    """Raw cosine scores: every subject's first template searched against everyone else gives
    the threshold `search` applies."""
    ws = _workspace(tmp_path / "ws", enrolled, normalisation="none")
    me = local_operator(ws, "tester")
    probe = data_dir / "london/images/005_smiling.jpg"
    res = search(ws, me, SearchRequest(probe, ("g",), purpose="test", case_ref="OS-4", fpir=0.3))
    (face,) = res.faces
    assert face.threshold_source == "gallery" and face.normalisation == "none"
    # the same count by hand: best cosine of each subject's first template to other subjects
    subjects = np.array(enrolled.subjects)
    first = {s: i for i, s in reversed(list(enumerate(enrolled.subjects)))}
    tops = []
    for s, i in first.items():
        others = enrolled.vectors[subjects != s]
        tops.append(float((others @ enrolled.vectors[i]).max()))
    own = GalleryCalibration(np.array(tops), len(subjects), "none")
    assert face.threshold == pytest.approx(own.threshold_for(0.3, len(subjects)), abs=1e-6)
    for c in face.candidates:
        counted = sum(t >= c.score - 1e-9 for t in tops) / len(tops)
        assert c.fpir == pytest.approx(max(counted, 1 / len(tops)), abs=1e-6)
    (entry,) = [e for e in ws.audit.entries(operation="search")]
    assert entry.record.details["threshold_source"] == "gallery"
    # FPIR 0.01 needs more than 137 searches to count: the model card decides
    res = search(ws, me, SearchRequest(probe, ("g",), purpose="test", case_ref="OS-5", fpir=0.01))
    assert res.faces[0].threshold_source == "model card"
    ws.close()
    # a later process reads the count back (sorted scores only); a damaged file is redone
    (saved,) = (tmp_path / "ws" / "selfcal").glob("*.npz")
    with np.load(saved) as z:
        assert sorted(z.files) == ["normalisation", "templates", "top_scores", "version"]
        assert np.allclose(z["top_scores"], sorted(tops, reverse=True), atol=1e-6)
    for damage in (None, b"not a numpy file"):
        if damage is not None:
            saved.write_bytes(damage)
        again = _reopen(tmp_path / "ws", normalisation="none")
        res = search(
            again,
            local_operator(again, "t"),
            SearchRequest(probe, ("g",), purpose="t", case_ref="OS-7", fpir=0.3),
        )
        assert res.faces[0].threshold == pytest.approx(face.threshold, abs=1e-9)
        again.close()
    # a folder where the count cannot be saved costs a recount later, not the search
    blocked = _workspace(tmp_path / "ws3", enrolled, normalisation="none")
    (tmp_path / "ws3" / "selfcal").write_text("in the way")
    res = search(
        blocked,
        local_operator(blocked, "t"),
        SearchRequest(probe, ("g",), purpose="t", case_ref="OS-8", fpir=0.3),
    )
    assert res.faces[0].threshold == pytest.approx(face.threshold, abs=1e-9)
    blocked.close()
    card_only = _workspace(
        tmp_path / "ws2", enrolled, normalisation="none", fpir_calibration="card"
    )
    res = search(
        card_only,
        local_operator(card_only, "t"),
        SearchRequest(probe, ("g",), purpose="t", case_ref="OS-6", fpir=0.3),
    )
    assert res.faces[0].threshold_source == "model card"
    card_only.close()


def test_normalised_count_leaves_the_member_out_of_every_statistic(
    tmp_path: Path, enrolled: Enrolled
) -> None:
    """The gallery is its own cohort, so a member searched against the rest must also be
    taken out of the cohort: its count is the search a person never enrolled would get."""
    from faceledger.gallery import selfcal

    ws = _workspace(tmp_path / "ws", enrolled)
    g = ws.store.get_gallery_by_name("g")
    own = selfcal.gallery_calibration(ws, [g], 0.3)
    assert own is not None and own.normalisation == "asnorm"
    codes = {s: i for i, s in enumerate(dict.fromkeys(enrolled.subjects))}
    subj = np.array([codes[s] for s in enrolled.subjects])
    vecs = enrolled.vectors.astype(np.float64)
    shortlist = Settings().top_k * 8  # SHORTLIST_FACTOR: the raw neighbours a search ranks
    tops, leaky = [], []
    for s in codes.values():
        member = int(np.flatnonzero(subj == s)[0])  # first template by id
        others = np.flatnonzero(subj != s)
        near = others[np.argsort(-(vecs[others] @ vecs[member]), kind="stable")[:shortlist]]
        for store, rows in ((tops, others), (leaky, np.arange(len(subj)))):
            cohort = Cohort(enrolled.vectors[rows], subj[rows])
            z, _ = normalise(vecs[member], vecs[near], subj[near], cohort, 50)
            store.append(float(z.max()))
    assert own.searches == len(codes)
    assert np.allclose(own.top_scores, sorted(tops, reverse=True), atol=1e-6)
    # left in the cohort, the member drags its nearest impostors' scores down
    assert np.mean(leaky) < np.mean(tops) - 0.05
    ws.close()


def test_quality_aggregation_weighs_each_template_by_its_quality(
    tmp_path: Path, orl_templates: TemplateSet
) -> None:
    """One subject, two real templates of quality 90 and 10: its score is the cosine with the
    90:10 weighted mean template (``fused`` would use 50:50)."""
    rows = [
        (v, s)
        for p, s, v in zip(
            orl_templates.paths, orl_templates.subjects, orl_templates.vectors, strict=True
        )
        if s == "s1"
    ]
    (a, _), (b, _), (probe, _) = rows[:3]
    scores = {}
    for mode in ("fused", "quality"):
        ws = open_workspace(Settings(data_dir=tmp_path / mode, aggregation=mode))
        g = ws.store.create_gallery("g", model_id=MODEL, created_by="t", legal_basis="consent")
        sid = ws.store.add_subject(g.id, "s1", enrolled_by="t").id
        ws.store.add_templates(
            [
                NewTemplate(sid, "a" * 64, Template(MODEL, a), quality_score=90.0),
                NewTemplate(sid, "b" * 64, Template(MODEL, b), quality_score=10.0),
            ]
        )
        (top,) = rank(ws, [g], Template(MODEL, probe), 1).subjects
        scores[mode] = top.score
        ws.close()
    for mode, (wa, wb) in (("fused", (1, 1)), ("quality", (90, 10))):
        mean = wa * a.astype(np.float64) + wb * b.astype(np.float64)
        expected = float(mean @ probe / np.linalg.norm(mean))
        assert scores[mode] == pytest.approx(expected, abs=1e-6)
    assert abs(scores["fused"] - scores["quality"]) > 1e-4


def test_precount_after_enrolment_is_what_the_next_search_uses(
    tmp_path: Path, data_dir: Path, enrolled: Enrolled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`faceledger enroll` counts a grown gallery's FPIR at once; the next search (in another
    process) reads that count instead of searching every member again."""
    from faceledger.gallery import selfcal

    # 300 subjects (enough to count FPIR 0.1): the real gallery plus perturbed copies of it
    rng = np.random.default_rng(3)
    extra = enrolled.vectors[:163] + rng.normal(0, 0.03, (163, enrolled.vectors.shape[1]))
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    grown = Enrolled(
        np.vstack([enrolled.vectors, extra]),
        [*enrolled.subjects, *(f"copy:{i}" for i in range(163))],
    )
    ws = _workspace(tmp_path / "ws", grown, normalisation="none")
    own = selfcal.precount(ws, ws.store.get_gallery_by_name("g"))
    assert own is not None and own.searches == len(set(grown.subjects))
    ws.close()

    def no_recount(*_a: object, **_k: object) -> None:
        raise AssertionError("the search counted the gallery again")

    monkeypatch.setattr(selfcal, "_measure", no_recount)
    again = _reopen(tmp_path / "ws", normalisation="none")
    probe = data_dir / "london/images/005_smiling.jpg"
    res = search(
        again,
        local_operator(again, "t"),
        SearchRequest(probe, ("g",), purpose="t", case_ref="OS-9", fpir=0.1),
    )
    (face,) = res.faces
    assert face.threshold_source == "gallery"
    assert face.threshold == pytest.approx(own.threshold_for(0.1, len(grown.subjects)), abs=1e-9)
    again.close()
    # a gallery too small to count FPIR 0.1 is not counted at all
    small = _workspace(tmp_path / "small", enrolled, normalisation="none")
    assert selfcal.precount(small, small.store.get_gallery_by_name("g")) is None
    small.close()
