"""Identity documents through the application layer and the command line: real rendering of
synthetic documents (London portraits, OCR-B MRZ), real Tesseract, the real model."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from faceledger import Settings
from faceledger import usecases as uc
from faceledger.audit import AuditOp
from faceledger.document.glyphs import OCRB_FONT
from faceledger.document.mrz import MrzFormat
from faceledger.document.synth import DocumentSpec, place_on_desk, render_document
from faceledger.errors import NoMrz, PurposeRequired, TooLarge, UnreadableMrz
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.io.decode import load_image
from tests.integration.test_cli_core import run
from tests.specimens import SPECIMEN

TODAY = datetime.date(2026, 12, 6)
FIELDS = dataclasses.replace(SPECIMEN, expiry_date="310415", personal_number="")


def _document(
    data_dir: Path,
    folder: Path,
    name: str,
    *,
    expiry: str = FIELDS.expiry_date,
    break_check: str | None = None,
) -> Path:
    """A TD3 data page of London person 001 photographed on a desk, saved as PNG."""
    fields = dataclasses.replace(FIELDS, expiry_date=expiry)
    spec = DocumentSpec(MrzFormat.TD3, fields, break_check, seed=3)
    portrait = load_image(data_dir / "london" / "images" / "001_neutral.jpg").pixels
    doc = place_on_desk(render_document(spec, portrait), seed=5)
    path = folder / f"{name}.png"
    Image.fromarray(doc.pixels).save(path)
    return path


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("documents")
    return {
        "good": _document(data_dir, folder, "good"),
        "expired": _document(data_dir, folder, "expired", expiry="190415"),
        "broken": _document(data_dir, folder, "broken", break_check="birth_date"),
        "live": data_dir / "london" / "images" / "001_smiling.jpg",
        "other": data_dir / "london" / "images" / "005_smiling.jpg",
        "face_only": data_dir / "london" / "images" / "001_neutral.jpg",
    }


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return open_workspace(Settings(data_dir=tmp_path_factory.mktemp("ws")))


def _check(
    ws: Workspace,
    document: Path,
    live: Path,
    *,
    purpose: str | None = "border control",
    hash_document_number: bool = True,
) -> uc.DocumentChecked:
    req = uc.CheckDocument(
        document, live, purpose, "GATE-7", hash_document_number=hash_document_number, today=TODAY
    )
    return uc.check_document(ws, local_operator(ws, "officer"), req)


def _mrz_details(ws: Workspace, seq: int) -> dict[str, Any]:
    (entry,) = [e for e in ws.audit.entries() if e.seq == seq]
    mrz = entry.record.details["mrz"]
    assert isinstance(mrz, dict)
    return mrz


def test_read_gives_the_printed_fields_valid_and_the_portrait(
    ws: Workspace, docs: dict[str, Path]
) -> None:
    done = uc.read_document(ws, local_operator(ws, "officer"), uc.ReadDocument(docs["good"], TODAY))
    result = done.reading.result
    assert result.valid and result.format is MrzFormat.TD3
    assert result.fields == FIELDS and result.expired is False
    assert result.expiry_date_iso == "2031-04-15" and result.birth_date_iso == "1974-08-12"
    assert done.portrait is not None and done.portrait.faces_on_document >= 1
    # the portrait is left of the MRZ's right end and above it, on the page
    assert done.portrait.box.bottom < done.reading.box.top
    data = done.as_json()
    assert data["mrz"]["fields"]["document_number"] == "L898902C3"
    assert set(data["mrz"]["unchecked_fields"]) >= {"surname", "given_names", "issuing_state"}
    assert all(c["ok"] for c in data["mrz"]["checks"]) and data["portrait"]["quality"]["score"] > 0


def test_the_same_person_passes_and_the_audit_entry_holds_no_number_or_name(
    ws: Workspace, docs: dict[str, Path]
) -> None:
    done = _check(ws, docs["good"], docs["live"])
    assert done.comparison is not None and done.comparison.outcome.value == "match"
    assert uc.CheckReason.MATCH in done.reasons and uc.CheckReason.MRZ_INVALID not in done.reasons
    expected = "pass" if done.reasons == (uc.CheckReason.MATCH,) else "refer"
    assert done.decision == expected
    (entry,) = [e for e in ws.audit.entries() if e.seq == done.audit_seq]
    assert entry.record.operation == AuditOp.DOCUMENT_CHECK
    assert (entry.record.purpose, entry.record.case_ref) == ("border control", "GATE-7")
    details = entry.record.details
    hmac = uc.document_number_hmac(ws, "UTO", "L898902C3")
    assert _mrz_details(ws, done.audit_seq)["document_number_hmac"] == hmac
    text = json.dumps(entry.record.details)
    for secret in ("L898902C3", "ERIKSSON", "ANNA", "740812"):
        assert secret not in text
    assert details["decision"] == done.decision and details["reasons"] == [
        r.value for r in done.reasons
    ]


def test_another_person_an_expired_or_broken_document_is_referred(
    ws: Workspace, docs: dict[str, Path]
) -> None:
    other = _check(ws, docs["good"], docs["other"])
    assert uc.CheckReason.NO_MATCH in other.reasons and other.decision == "refer"
    expired = _check(ws, docs["expired"], docs["live"])
    assert uc.CheckReason.EXPIRED in expired.reasons and expired.decision == "refer"
    assert expired.reading is not None and expired.reading.result.valid
    broken = _check(ws, docs["broken"], docs["live"])
    assert uc.CheckReason.MRZ_INVALID in broken.reasons
    assert broken.reading is not None
    failed = [c.name for c in broken.reading.result.checks if not c.ok]
    assert "birth_date" in failed


def test_no_mrz_still_compares_faces_and_says_why(ws: Workspace, docs: dict[str, Path]) -> None:
    done = _check(ws, docs["face_only"], docs["live"])
    assert done.reading is None and done.mrz_error == "no_mrz"
    assert uc.CheckReason.MRZ_INVALID in done.reasons and done.comparison is not None
    with pytest.raises(NoMrz):
        uc.read_document(ws, local_operator(ws, "officer"), uc.ReadDocument(docs["face_only"]))


def test_a_check_states_a_purpose_and_may_record_the_number_in_clear(
    ws: Workspace, docs: dict[str, Path]
) -> None:
    before = len(list(ws.audit.entries()))
    with pytest.raises(PurposeRequired):
        _check(ws, docs["good"], docs["live"], purpose=None)
    assert len(list(ws.audit.entries())) == before  # refused before anything was written
    clear = _check(ws, docs["good"], docs["live"], hash_document_number=False)
    assert _mrz_details(ws, clear.audit_seq)["document_number"] == "L898902C3"


def test_cli_read_and_check(docs: dict[str, Path], tmp_path: Path) -> None:
    ws_dir = tmp_path / "ws"
    r = run("--data-dir", str(ws_dir), "document", "read", str(docs["good"]), "--json", "-")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["mrz"]["valid"] and data["mrz"]["fields"]["surname"] == "ERIKSSON"
    r = run(
        "--data-dir", str(ws_dir), "document", "check", str(docs["good"]),
        "--live", str(docs["live"]), "--purpose", "border control", "--case", "GATE-7",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "match" in r.stdout and "audit entry" in r.stdout
    r = run("--data-dir", str(ws_dir), "document", "read", str(docs["face_only"]))
    assert r.returncode == 2 and "no_mrz" in r.stderr
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    r = run("--data-dir", str(ws_dir), "document", "read", str(junk))
    assert r.returncode == 2 and "bad_image" in r.stderr
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((400, 600, 3), 250, np.uint8)).save(blank)
    r = run("--data-dir", str(ws_dir), "document", "read", str(blank))
    assert r.returncode == 2 and "no_mrz" in r.stderr


def test_a_document_photographed_upside_down_is_read_and_its_portrait_turned_upright(
    ws: Workspace, docs: dict[str, Path], tmp_path: Path
) -> None:
    upside_down = tmp_path / "upside_down.png"
    Image.open(docs["good"]).rotate(180).save(upside_down)
    done = _check(ws, upside_down, docs["live"])
    assert done.reading is not None and done.reading.result.fields == FIELDS
    assert done.portrait is not None and done.portrait.quarter_turns == 2
    assert uc.CheckReason.MATCH in done.reasons
    # the portrait's box is given in the image as photographed: below the (turned) MRZ
    assert done.portrait.box.top > done.reading.box.bottom


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    small = open_workspace(Settings(data_dir=tmp_path / "ws", max_image_pixels=1_000_000))
    huge = tmp_path / "huge.png"
    Image.new("L", (1200, 1000), 255).save(huge)
    me = local_operator(small, "officer")
    with pytest.raises(TooLarge):
        uc.read_document(small, me, uc.ReadDocument(huge))
    req = uc.CheckDocument(huge, huge, "border control", "GATE-7")
    with pytest.raises(TooLarge):
        uc.check_document(small, me, req)
    assert list(small.audit.entries(operation="document_check")) == []


def test_a_zone_that_is_no_mrz_is_unreadable_and_a_check_says_so(
    ws: Workspace, docs: dict[str, Path], tmp_path: Path
) -> None:
    """Two OCR-B lines of 40 characters: an MRZ's line structure, no MRZ format's shape."""
    page = Image.new("RGB", (1400, 500), (245, 245, 240))
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(OCRB_FONT), 40)
    for i, line in enumerate(
        ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<")
    ):
        draw.text((60, 250 + 60 * i), line, font=font, fill=(20, 20, 20))
    path = tmp_path / "forty.png"
    page.save(path)
    with pytest.raises(UnreadableMrz):
        uc.read_document(ws, local_operator(ws, "officer"), uc.ReadDocument(path))
    done = _check(ws, path, docs["live"])
    assert done.reading is None and done.mrz_error == "unreadable_mrz"
    assert done.reasons[0] is uc.CheckReason.MRZ_INVALID
    assert uc.CheckReason.NO_PORTRAIT in done.reasons and done.comparison is None
