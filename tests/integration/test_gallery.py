"""Galleries end to end on real images: bulk enrolment, search, deletion, bad inputs."""

from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from faceledger import Settings
from faceledger.access import User
from faceledger.config import QualityGates
from faceledger.errors import Conflict, PermissionDenied, PurposeRequired
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.index import load_index
from faceledger.store.database import sqlite_path
from faceledger.usecases import (
    EnrolFolder,
    EnrolImage,
    EraseSubject,
    SearchRequest,
    check_erasure,
    enrol_folder,
    enrol_image,
    erase_subject,
    search,
)

LOW_RES_GATES = QualityGates(min_inter_eye_px=8.0, min_score=20.0)


def _workspace(tmp: Path, **kw: object) -> tuple[Workspace, User]:
    settings = dataclasses.replace(Settings(data_dir=tmp, gates=LOW_RES_GATES), **kw)
    ws = open_workspace(settings)
    ws.store.create_gallery("g", model_id="dlib-resnet-v1", created_by="t", legal_basis="consent")
    return ws, local_operator(ws, "tester")


@pytest.fixture(scope="module")
def orl_gallery(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Workspace:
    """ORL s1–s30, three images each (the protocol's gallery), enrolled in bulk."""
    ws, me = _workspace(tmp_path_factory.mktemp("orl"))
    rep = enrol_folder(ws, me, EnrolFolder("g", data_dir / "protocols/orl_gallery.csv"))
    assert rep.total_items == 90
    assert rep.enrolled + len(rep.rejected) == 90
    return ws


def test_search_finds_mate_at_rank_1_and_nonmated_probe_gets_no_candidate(
    orl_gallery: Workspace, data_dir: Path
) -> None:
    ws = orl_gallery
    me = local_operator(ws, "searcher")
    hits = 0
    for s in ("s2", "s7", "s13", "s21", "s29"):
        res = search(
            ws,
            me,
            SearchRequest(
                data_dir / f"orl/{s}/8.pgm", ("g",), purpose="test", case_ref="T1", fpir=0.1
            ),
        )
        (face,) = res.faces
        hits += bool(face.candidates) and face.candidates[0].external_id == s
        assert all(c.score >= face.threshold for c in face.candidates)
        assert [c.rank for c in face.candidates] == list(range(1, len(face.candidates) + 1))
    assert hits >= 4
    outcomes = [
        search(
            ws,
            me,
            SearchRequest(
                data_dir / f"orl/{s}/1.pgm", ("g",), purpose="test", case_ref="T2", fpir=0.01
            ),
        )
        .faces[0]
        .outcome
        for s in ("s31", "s35", "s40")
    ]
    assert outcomes.count("no_candidate") >= 2
    # every search is in the audit log with its purpose and leads
    entries = [e for e in ws.audit.entries(operation="search")]
    assert len(entries) >= 8 and all(e.record.purpose == "test" for e in entries)
    assert ws.audit.verify().ok


def test_search_requires_purpose_and_case(orl_gallery: Workspace, data_dir: Path) -> None:
    me = local_operator(orl_gallery, "searcher")
    with pytest.raises(PurposeRequired):
        search(
            orl_gallery,
            me,
            SearchRequest(data_dir / "orl/s2/8.pgm", ("g",), purpose="", case_ref="x"),
        )
    with pytest.raises(PurposeRequired):
        search(
            orl_gallery,
            me,
            SearchRequest(data_dir / "orl/s2/8.pgm", ("g",), purpose="p", case_ref=None),
        )


def test_search_refused_without_grant(orl_gallery: Workspace, data_dir: Path) -> None:
    stranger = User(id="x", roles=frozenset({"searcher"}))  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        search(
            orl_gallery,
            stranger,
            SearchRequest(data_dir / "orl/s2/8.pgm", ("g",), purpose="p", case_ref="c"),
        )


def test_bulk_enrolment_reports_and_skips_bad_inputs(tmp_path: Path, data_dir: Path) -> None:
    ws, me = _workspace(tmp_path / "ws")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(data_dir / "london/images/001_neutral.jpg", folder / "a.jpg")
    shutil.copy(data_dir / "london/images/002_neutral.jpg", folder / "b.jpg")
    (folder / "broken.jpg").write_bytes(
        (data_dir / "london/images/003_neutral.jpg").read_bytes()[:5000]
    )
    shutil.copy(data_dir / "scenes/dogs.jpg", folder / "dogs.jpg")
    rows = [
        ["a.jpg", "p1"],
        ["a.jpg", "p1"],  # duplicate row
        ["b.jpg", "p2"],
        ["missing.jpg", "p3"],  # missing path
        ["broken.jpg", "p4"],  # unreadable (truncated)
        ["dogs.jpg", "p5"],  # subject with no usable image (no face)
    ]
    with (folder / "list.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["image", "subject"], *rows])
    rep = enrol_folder(ws, me, EnrolFolder("g", folder / "list.csv"))
    assert rep.enrolled == 2 and rep.duplicates == 1
    reasons = dict(rep.rejected)
    assert any("missing.jpg" in k and "unreadable" in v for k, v in reasons.items())
    assert any("broken.jpg" in k and "unreadable" in v for k, v in reasons.items())
    assert any("dogs.jpg" in k and "no face" in v for k, v in reasons.items())
    assert sorted(rep.subjects_without_template) == ["p3", "p4", "p5"]
    # a second run of the same source resumes the finished job: nothing added, nothing lost
    again = enrol_folder(ws, me, EnrolFolder("g", folder / "list.csv"))
    assert again.enrolled == 0 and ws.store.counts().templates == 2
    # single-image enrolment of an already enrolled image is a conflict, store unchanged
    with pytest.raises(Conflict):
        enrol_image(ws, me, EnrolImage("g", "p9", folder / "a.jpg"))
    assert ws.store.counts().templates == 2
    ws.close()


def test_deleted_subject_is_never_returned_and_its_bytes_leave_the_file(
    tmp_path: Path, data_dir: Path
) -> None:
    ws, me = _workspace(tmp_path)
    img = data_dir / "london/images"
    for sid in ("001", "004", "012"):
        enrol_image(ws, me, EnrolImage("g", sid, img / f"{sid}_neutral.jpg"))
    victim = ws.store.find_subject(ws.store.get_gallery_by_name("g").id, "004")
    assert victim is not None
    (tinfo,) = ws.store.list_templates(victim.id)
    vector_bytes = ws.store.get_templates([tinfo.id])[tinfo.id].vector.astype("<f4").tobytes()
    db_file = sqlite_path(ws.db)
    assert vector_bytes in db_file.read_bytes() + _wal(db_file)

    before = search(
        ws, me, SearchRequest(img / "004_smiling.jpg", ("g",), purpose="t", case_ref="c")
    )
    assert before.faces[0].candidates[0].external_id == "004"
    receipt = erase_subject(ws, me, EraseSubject("g", "004", "erasure request")).receipt
    after = search(
        ws, me, SearchRequest(img / "004_smiling.jpg", ("g",), purpose="t", case_ref="c")
    )
    assert all(c.external_id != "004" for c in after.faces[0].candidates)
    ws.store.compact()
    assert vector_bytes not in db_file.read_bytes() + _wal(db_file)
    check = check_erasure(ws, me, receipt.audit_seq)
    assert check.ok and check.templates_in_store == [] and check.templates_in_index == []
    ws.close()
    # reopened from disk: still gone, and the index agrees with the store
    ws2 = open_workspace(ws.settings)
    g = ws2.store.get_gallery_by_name("g")
    assert ws2.indexes.sync(g, 128).agreed
    assert tinfo.id not in ws2.indexes.get(g, 128)
    ws2.close()


def _wal(db_file: Path) -> bytes:
    wal = db_file.with_name(db_file.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""


def test_index_file_rebuilt_when_lost_or_stale(tmp_path: Path, data_dir: Path) -> None:
    ws, me = _workspace(tmp_path)
    img = data_dir / "london/images"
    for sid in ("020", "021"):
        enrol_image(ws, me, EnrolImage("g", sid, img / f"{sid}_neutral.jpg"))
    g = ws.store.get_gallery_by_name("g")
    ws.close()
    index_file = tmp_path / "indexes" / f"gallery-{g.id}.index"
    assert set(load_index(index_file).ids().tolist()) == set(ws.store.template_ids(g.id).tolist())
    index_file.unlink()
    ws2 = open_workspace(ws.settings)
    res = search(
        ws2,
        local_operator(ws2, "t"),
        SearchRequest(img / "021_smiling.jpg", ("g",), purpose="t", case_ref="c"),
    )
    assert res.faces[0].candidates[0].external_id == "021"
    assert np.array_equal(
        np.sort(ws2.indexes.get(g, 128).ids()), np.sort(ws2.store.template_ids(g.id))
    )
    ws2.close()
