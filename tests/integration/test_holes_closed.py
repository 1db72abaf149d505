"""Regression tests for the holes found by testing the CLI and the service as an attacker and
a careless user would (issue #19), on real images and real SQLite workspaces; the numbers are
the issue's items."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from faceledger.cli.app import app
from faceledger.config import Settings
from faceledger.errors import Conflict, InvalidArgument
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.pipeline import Engine
from faceledger.review import LeadStatus
from faceledger.store.schema import galleries, job_items
from faceledger.usecases import (
    ApplyRetention,
    CreateGallery,
    DecideLead,
    EnrolFolder,
    EraseSubject,
    SearchRequest,
    apply_retention,
    check_erasure,
    create_gallery,
    decide_lead,
    enrol_folder,
    erase_subject,
    review_queue,
    search,
)


def cli(data: Path, *args: str, who: str = "tester") -> tuple[int, str]:
    r = CliRunner().invoke(app, ["--data-dir", str(data), "--operator", who, *args])
    return r.exit_code, " ".join(r.output.split())  # rich wraps long lines


@pytest.fixture
def people(tmp_path: Path, data_dir: Path) -> Path:
    """Five London people, one sub-folder each, plus what a careless folder also holds."""
    root = tmp_path / "people"
    for sid in ("001", "002", "003", "004", "005"):
        (root / sid).mkdir(parents=True)
        shutil.copy(data_dir / f"london/images/{sid}_neutral.jpg", root / sid / "a.jpg")
    (root / "003" / "more").mkdir()
    shutil.copy(data_dir / "london/images/003_smiling.jpg", root / "003" / "more" / "b.jpg")
    (root / "004" / "notes.txt").write_text("not an image")
    os.mkfifo(root / "005" / "pipe.jpg")
    (root / "005" / "loop.jpg").symlink_to(root / "005" / "loop.jpg")
    (root / "readme.md").write_text("beside the subject folders")
    return root


def _workspace(tmp: Path) -> tuple[Workspace, Path]:
    ws = open_workspace(Settings(data_dir=tmp / "ws"))
    create_gallery(ws, local_operator(ws, "admin"), CreateGallery("g", "consent"))
    return ws, tmp / "ws"


def test_1_erasure_closes_and_unnames_review_leads_and_job_items(
    tmp_path: Path, people: Path, data_dir: Path
) -> None:
    ws, _ = _workspace(tmp_path)
    enrol = enrol_folder(ws, local_operator(ws, "enroller"), EnrolFolder("g", people))
    assert enrol.enrolled == 5
    probe = data_dir / "london/images/002_smiling.jpg"
    found = search(
        ws, local_operator(ws, "searcher"), SearchRequest(probe, ("g",), "case work", "C-1")
    )
    assert found.faces[0].candidates[0].external_id == "002"
    reviewer = local_operator(ws, "reviewer")
    assert [q.record.search_id for q in review_queue(ws, reviewer, limit=10).items] == [
        found.search_id
    ]

    erased = erase_subject(ws, local_operator(ws, "enroller"), EraseSubject("g", "002", "asked"))
    lead = ws.reviews.search(found.search_id).lead(1)
    assert lead.status is LeadStatus.ERASED and lead.lead.subject_id == "[erased]"
    assert lead.lead.template_id is None
    assert review_queue(ws, reviewer, limit=10).items == ()
    with pytest.raises(Conflict):
        decide_lead(ws, reviewer, DecideLead(found.search_id, 1, "confirmed", "looks alike"))
    with ws.db.connect() as conn:
        keys = [str(k) for k in conn.execute(sa.select(job_items.c.item_key)).scalars()]
    assert not any("002" in k for k in keys)
    assert sum(k.startswith("erased:") for k in keys) == 1

    check = check_erasure(ws, local_operator(ws, "auditor"), erased.receipt.audit_seq)
    assert check.ok and check.review_leads_naming_subject == 0
    ws.close()


def test_1_erasure_check_fails_while_a_lead_still_names_the_subject(
    tmp_path: Path, people: Path, data_dir: Path
) -> None:
    ws, _ = _workspace(tmp_path)
    enrol_folder(ws, local_operator(ws, "enroller"), EnrolFolder("g", people))
    probe = data_dir / "london/images/001_smiling.jpg"
    found = search(ws, local_operator(ws, "s"), SearchRequest(probe, ("g",), "case", "C-2"))
    erased = erase_subject(ws, local_operator(ws, "e"), EraseSubject("g", "001", "asked"))
    with ws.db.begin() as conn:  # an erasure interrupted before the leads were unnamed
        conn.execute(
            sa.text("UPDATE review_leads SET subject_id = '001' WHERE search_id = :s"),
            {"s": found.search_id},
        )
    check = check_erasure(ws, local_operator(ws, "a"), erased.receipt.audit_seq)
    assert not check.ok and check.review_leads_naming_subject == 1
    ws.close()


def test_6_retention_is_bounded_and_one_bad_gallery_stops_no_other(tmp_path: Path) -> None:
    ws, data = _workspace(tmp_path)
    ws.close()
    code, out = cli(data, "gallery", "create", "huge", "--legal-basis", "consent",
                    "--retention-days", "3000000")  # fmt: skip
    assert code == 2 and "invalid_argument" in out and "36,500" in out
    # a gallery made by an older release with such a period, beside a normal expiring one
    ws = open_workspace(Settings(data_dir=data))
    me = local_operator(ws, "admin")
    create_gallery(ws, me, CreateGallery("old", "consent", retention_days=30))
    with ws.db.begin() as conn:
        conn.execute(galleries.update().values(retention_days=3_000_000))
        conn.execute(galleries.update().where(galleries.c.name == "g").values(retention_days=1))
    ws.store.add_subject(ws.store.get_gallery_by_name("g").id, "gone", enrolled_by="t")
    later = ws.clock().replace(year=ws.clock().year + 1)
    run = apply_retention(ws, me, ApplyRetention(now=later))
    assert [r.subject for r in run.receipts] == ["gone"] and run.failed == []
    ws.close()
    code, out = cli(data, "retention", "apply")
    assert code == 0, out


def test_7_one_rule_for_gallery_names(tmp_path: Path) -> None:
    ws, data = _workspace(tmp_path)
    me = local_operator(ws, "admin")
    for bad in ("a/b", "-lead", "zero\u200bwidth", "rtl\u202eoverride", " ", "x" * 101, "a\\b"):
        with pytest.raises(InvalidArgument):
            create_gallery(ws, me, CreateGallery(bad, "consent"))
    create_gallery(ws, me, CreateGallery("Mugshots 2026-Q4_v.2", "consent"))
    create_gallery(ws, me, CreateGallery("Fahndung Köln", "consent"))
    ws.close()
    code, out = cli(data, "gallery", "create", "a/b", "--legal-basis", "consent")
    assert code == 2 and "invalid_argument" in out


def test_12_careless_command_lines_get_clear_errors(
    tmp_path: Path, people: Path, data_dir: Path
) -> None:
    ws, data = _workspace(tmp_path)
    ws.close()
    code, out = cli(data, "enroll", "g", str(people), "--subject", "p1")
    assert code == 2 and "--subject and --name are for one image" in out
    code, out = cli(data, "enroll", "g", str(tmp_path / "missing.jpg"), "--subject", "p1")
    assert code == 2 and "no such image, folder or CSV file" in out
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    code, out = cli(a_file, "gallery", "list")
    assert code == 2 and "is a file, not a folder" in out
    img = str(data_dir / "london/images/001_neutral.jpg")
    code, out = cli(data, "verify", img, img, "--fmr", "0")
    assert code == 2 and "target FMR must be in (0, 1)" in out
    code, out = cli(data, "search", img, "-g", "g", "--purpose", "p", "--case", "c", "--k", "0")
    assert code == 2 and "k must be between 1 and 1000" in out

    report = tmp_path / "report.json"
    code, out = cli(data, "enroll", "g", str(people), "--report", str(report))
    assert code == 0, out
    skipped = {s["path"]: s["reason"] for s in json.loads(report.read_text())["skipped"]}
    assert skipped == {
        "readme.md": "not in a subject folder",
        "003/more": "nested folder (only images directly in a subject folder are enrolled)",
        "004/notes.txt": "not an image file (by its suffix)",
        "005/loop.jpg": "not a regular file",
        "005/pipe.jpg": "not a regular file",
    }
    assert "skipped 003/more" in out


def test_5_a_signed_log_stays_signed_and_bad_verify_inputs_are_typed(tmp_path: Path) -> None:
    data = tmp_path / "ws"
    pem = tmp_path / "audit.pem"
    assert cli(data, "keys", "audit", str(pem))[0] == 0
    signed = CliRunner().invoke(
        app,
        ["--data-dir", str(data), "gallery", "create", "g", "--legal-basis", "consent"],
        env={"FACELEDGER_AUDIT_SIGNING_KEY": str(pem)},
    )
    assert signed.exit_code == 0, signed.output
    head = tmp_path / "head.json"
    code, out = cli(data, "audit", "head")
    assert code == 0
    head.write_text(out)
    assert cli(data, "audit", "verify", "--anchor", str(head))[0] == 0
    # someone without the key appends: the log no longer verifies, with no --key given
    assert cli(data, "gallery", "create", "h", "--legal-basis", "consent")[0] == 0
    code, out = cli(data, "audit", "verify")
    assert code == 1 and "BROKEN" in out and "unsigned, though the log is signed" in out
    # bad inputs to the check are typed errors (exit 2), not tracebacks (exit 1)
    not_json = tmp_path / "notjson.json"
    not_json.write_text("{not json")
    for args in (
        ["--anchor", str(not_json)],
        ["--anchor", str(tmp_path / "missing.json")],
        ["--key", str(tmp_path / "missing.pem")],
        ["--key", str(not_json)],
    ):
        code, out = cli(data, "audit", "verify", *args)
        assert code == 2 and "invalid_argument" in out, (args, out)


def test_14_every_output_says_which_face_was_used_and_how_many_others(
    tmp_path: Path, data_dir: Path
) -> None:
    crowd = data_dir / "scenes/bald_guys.jpg"
    one = data_dir / "london/images/001_neutral.jpg"
    data = tmp_path / "ws"
    code, out = cli(data, "detect", str(crowd), "--json")
    assert code == 0, out
    boxes = [f["box"] for f in json.loads(out)["faces"]]
    n = len(boxes)
    assert n >= 10
    # the default policy's pick (``primary``: the crowd's subject, large and central)
    largest = Engine(Settings()).embed(crowd).face_index
    assert Engine(Settings()).embed(crowd).selection == "primary"

    # 1:1: which face of the crowd was compared, of how many, by which policy
    r = CliRunner().invoke(app, ["--data-dir", str(data), "verify", str(crowd), str(one), "--json"])
    assert r.exit_code == 0, r.output
    a, b = json.loads(r.output)["a"]["face"], json.loads(r.output)["b"]["face"]
    assert (a["faces_in_image"], a["face_index"], a["selection"]) == (n, largest, "primary")
    assert a["other_faces"] == n - 1 and a["box"] == boxes[largest]
    assert (b["faces_in_image"], b["other_faces"]) == (1, 0)
    code, out = cli(data, "verify", str(crowd), str(one))
    assert f"face {largest} of {n} (primary); {n - 1} others not compared" in out, out
    code, out = cli(data, "verify", str(one), str(data_dir / "london/images/001_smiling.jpg"))
    assert code == 0 and "not compared" not in out  # a lone face needs no note

    # 1:N: the one face searched, the others named; --all-faces searches each
    assert cli(data, "gallery", "create", "g", "--legal-basis", "consent")[0] == 0
    assert cli(data, "enroll", "g", str(one), "--subject", "001")[0] == 0
    probe = ["search", str(crowd), "-g", "g", "--purpose", "check", "--case", "C-14"]
    code, out = cli(data, *probe, "--json")
    assert code == 0, out
    (face,) = json.loads(out)["faces"]
    assert (face["face"]["faces_in_image"], face["face"]["face_index"]) == (n, largest)
    assert face["face"]["other_faces"] == n - 1
    code, out = cli(data, *probe)
    assert f"{n - 1} others not searched: --all-faces searches every face" in out, out
    code, out = cli(data, *probe, "--all-faces", "--json")
    faces = [f["face"] for f in json.loads(out)["faces"]]
    assert [f["face_index"] for f in faces] == list(range(n))
    assert {(f["faces_in_image"], f["selection"], f["other_faces"]) for f in faces} == {
        (n, None, 0)
    }
    ws = open_workspace(Settings(data_dir=data))
    try:
        searches = [e for e in ws.audit.entries() if e.record.operation == "search"]
        assert [e.record.details["faces_in_image"] for e in searches] == [n, n, n]
        assert searches[0].record.details["face_indexes"] == [largest]
        assert searches[-1].record.details["face_indexes"] == list(range(n))
    finally:
        ws.close()


def _as(data: Path, key: str | None, *args: str, **env: str) -> tuple[int, str]:
    """``faceledger`` with the API key ``key`` (None: a local operator, no credential)."""
    env = {"FACELEDGER_API_KEY": key or "", **env}
    r = CliRunner().invoke(app, ["--data-dir", str(data), *args], env=env)
    return r.exit_code, " ".join(r.output.split())


def test_2_operators_are_accounts_with_one_spelling_and_reviews_need_a_key(
    tmp_path: Path, data_dir: Path
) -> None:
    data = tmp_path / "ws"
    img = data_dir / "london/images"
    code, out = _as(data, None, "users", "create", "Root", "--role", "admin", "--key")
    assert code == 0 and "'root'" in out, out  # stored in its one spelling
    for twin in ("ROOT", "root ", "\uff52\uff4f\uff4f\uff54"):  # case, space, fullwidth
        code, out = cli(data, "users", "create", twin, "--role", "reviewer")
        assert code == 2 and "already exists" in out, (twin, out)
    for bad in ("ro\u200bot", "a\u202eb", "r\u043e\u043et", ""):  # zero-width, RTL, Cyrillic
        code, out = cli(data, "users", "create", bad, "--role", "reviewer")
        assert code == 2 and "invalid_argument" in out, (bad, out)
        code, out = cli(data, "gallery", "list", who=bad)
        assert (code == 2 and "invalid_argument" in out) or not bad, (bad, out)

    keys = {}
    for name in ("rev1", "rev2"):
        code, out = cli(data, "users", "create", name, "--role", "reviewer", "--key")
        keys[name] = out.split("API key (shown once): ")[1].split()[0]
    assert cli(data, "gallery", "create", "g", "--legal-basis", "consent")[0] == 0
    for name in ("rev1", "rev2"):
        assert cli(data, "users", "grant", name, "g", "view_images")[0] == 0
    assert cli(data, "enroll", "g", str(img / "008_neutral.jpg"), "--subject", "008")[0] == 0
    # a local operator searches; the two-person rule is off for this workspace ...
    off = {"FACELEDGER_TWO_PERSON_RULE": "0"}
    probe = ["search", str(img / "008_smiling.jpg"), "-g", "g", "--purpose", "p", "--case", "c"]
    code, out = _as(data, None, "--operator", "Rev1 ", *probe, "--json", **off)
    assert code == 0, out
    sid = json.loads(out)["search_id"]
    decide = ["review", "decide", sid, "1", "confirmed", "--note", "same ears"]
    # ... a name on the command line is no reviewer, whatever it says
    code, out = _as(data, None, "--operator", "someone-else", *decide, **off)
    assert code == 2 and "needs an account" in out, out
    # the account of the searcher's name is the searcher: no review of one's own search
    code, out = _as(data, keys["rev1"], *decide, **off)
    assert code == 2 and "own search" in out, out
    code, out = _as(data, keys["rev1"], "--operator", "rev2", *decide, **off)
    assert code == 2 and "not the account of the API key" in out, out
    code, out = _as(data, "flk_000000000000_" + "x" * 40, *decide, **off)
    assert code == 2 and "unauthenticated" in out, out
    # no credential backed the searcher, so one reviewer is not enough even with the rule off
    code, out = _as(data, keys["rev2"], *decide, **off)
    assert code == 2 and "first look" in out, out  # blind review: the faces before the score
    code, out = _as(data, keys["rev2"], "review", "look", sid, "1", "same", **off)
    assert code == 0 and "recorded: same" in out, out
    code, out = _as(data, keys["rev2"], *decide, **off)
    assert code == 0 and "awaiting_second" in out, out

    ws = open_workspace(Settings(data_dir=data))
    try:
        (entry,) = ws.audit.entries(operation="search")
        assert entry.record.actor == "local:rev1"
        (review,) = ws.audit.entries(operation="review")
        assert review.record.actor == "rev2" and review.record.details["two_person_rule"]
    finally:
        ws.close()


def test_13_one_face_under_two_subject_ids_is_reported_or_refused(
    tmp_path: Path, data_dir: Path
) -> None:
    img = data_dir / "london/images"
    data = tmp_path / "ws"
    assert cli(data, "gallery", "create", "g", "--legal-basis", "consent")[0] == 0
    assert cli(data, "enroll", "g", str(img / "001_neutral.jpg"), "--subject", "001")[0] == 0
    # another photo of 001 under a new id: enrolled, with a warning naming 001
    code, out = cli(data, "enroll", "g", str(img / "001_smiling.jpg"), "--subject", "P-7")
    assert code == 0 and "also subject 001's" in out, out
    code, out = cli(data, "enroll", "g", str(img / "002_neutral.jpg"), "--subject", "002")
    assert code == 0 and "warning" not in out, out  # someone else: no warning
    # refused where the deployment says so; nothing stored
    refuse = {"FACELEDGER_NEAR_DUPLICATES": "refuse"}
    code, out = _as(data, None, "enroll", "g", str(img / "002_smiling.jpg"), "--subject", "Q")
    assert code == 0  # default: warn
    code, out = _as(
        data, None, "enroll", "g", str(img / "003_neutral.jpg"), "--subject", "003", **refuse
    )
    assert code == 0, out
    code, out = _as(
        data, None, "enroll", "g", str(img / "003_smiling.jpg"), "--subject", "R", **refuse
    )
    assert code == 2 and "near_duplicate" in out and "'003'" in out, out

    # a folder job: one person in two subject folders, reported per item and in the audit
    root = tmp_path / "folder"
    for sid, stem in (("A", "004_neutral"), ("B", "004_smiling"), ("C", "005_neutral")):
        (root / sid).mkdir(parents=True)
        shutil.copy(img / f"{stem}.jpg", root / sid / "x.jpg")
    rep = tmp_path / "rep.json"
    code, out = cli(data, "enroll", "g", str(root), "--report", str(rep))
    assert code == 0 and "also subject A's" in out, out
    pairs = [
        (d["subject"], d["other_subject"]) for d in json.loads(rep.read_text())["near_duplicates"]
    ]
    assert pairs == [("B", "A")]
    ws = open_workspace(Settings(data_dir=data))
    try:
        (batch,) = ws.audit.entries(operation="enrol_batch")
        assert [d["other_subject"] for d in batch.record.details["near_duplicates"]] == ["A"]
        single = [e.record.details for e in ws.audit.entries(operation="enrol")][1]
        assert [d["other_subject"] for d in single["near_duplicates"]] == ["001"]
        assert ws.store.find_subject(ws.store.get_gallery_by_name("g").id, "R") is None
    finally:
        ws.close()
    # refused in a folder job: the item is rejected with the reason
    root2 = tmp_path / "folder2"
    (root2 / "D").mkdir(parents=True)
    shutil.copy(img / "005_smiling.jpg", root2 / "D" / "x.jpg")
    code, out = _as(data, None, "enroll", "g", str(root2), **refuse)
    assert code == 0 and "0 enrolled" in out and "near-duplicate of subject C" in out, out
