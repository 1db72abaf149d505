"""The MRZ reader end to end: real synthetic documents, real Tesseract, no mocks.

Documents come from :mod:`faceledger.document.synth` (London portraits, OCR-B zones, known
truth); every read goes through the ``tesseract`` program. A read is *right* when it is valid
and every field equals the truth; a valid read with a wrong field is the one outcome that must
never happen, so every test that reads also asserts its absence.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from faceledger.document.locate import find_mrz_zones
from faceledger.document.mrz import MrzFields, MrzFormat
from faceledger.document.ocr import MrzReading, ocr_lines, read_mrz
from faceledger.document.synth import (
    DEGRADATIONS,
    DocumentSpec,
    RenderedDocument,
    degrade,
    pixels_sha256,
    place_on_desk,
    random_fields,
    render_document,
    sample_set,
)
from faceledger.errors import AmbiguousMrz, NoMrz, OcrUnavailable
from faceledger.io.decode import load_image
from faceledger.types import Pixels
from tests.specimens import SPECIMEN

PX_PER_MM = 10.0
PER_KIND = 5
SEVERITY = 0.5
"""A moderate degradation: 14° turns, 12 % keystone, JPEG quality 35, half-strength glare."""

TD3_FIELDS = replace(SPECIMEN, expiry_date="320415")
TD1_FIELDS = replace(TD3_FIELDS, document_type="I", document_number="D23145890", personal_number="")


@pytest.fixture(scope="module", autouse=True)
def _system_packages() -> Iterator[None]:
    missing = [
        name for name, ok in (("tesseract-ocr", shutil.which("tesseract") is not None),) if not ok
    ]
    if missing:
        pytest.fail(
            f"these tests need the Debian packages {missing} (scripts/test.sh installs them)"
        )
    yield


@pytest.fixture(scope="module")
def portraits(data_dir: Path) -> list[Pixels]:
    folder = data_dir / "london" / "images"
    return [load_image(folder / f"{i:03d}_neutral.jpg").pixels for i in range(1, PER_KIND + 1)]


def _photo(spec: DocumentSpec, portrait: Pixels, seed: int) -> RenderedDocument:
    return place_on_desk(render_document(spec, portrait), seed)


def _right(reading: MrzReading, doc: RenderedDocument) -> bool:
    return reading.valid and reading.result.fields == doc.fields


def _assert_not_wrong(reading: MrzReading, doc: RenderedDocument) -> None:
    if reading.valid:
        assert reading.result.fields == doc.fields, (reading.result.lines, doc.lines)


@pytest.fixture(scope="module")
def base_documents(portraits: list[Pixels]) -> list[RenderedDocument]:
    """Five clean photos, TD3 and TD1 alternating, made-up holders."""
    docs = []
    for i, portrait in enumerate(portraits):
        fmt = MrzFormat.TD3 if i % 2 == 0 else MrzFormat.TD1
        fields = random_fields(np.random.default_rng([i, 5]), fmt)
        docs.append(_photo(DocumentSpec(fmt, fields, None, PX_PER_MM, seed=i), portrait, i))
    return docs


@pytest.mark.parametrize(
    ("fmt", "fields"), [(MrzFormat.TD3, TD3_FIELDS), (MrzFormat.TD1, TD1_FIELDS)]
)
def test_clean_document_reads_exactly(
    fmt: MrzFormat, fields: MrzFields, portraits: list[Pixels]
) -> None:
    doc = _photo(DocumentSpec(fmt, fields, None, PX_PER_MM), portraits[0], 3)
    reading = read_mrz(doc.pixels)
    assert reading.result.lines == doc.lines
    assert reading.valid and reading.result.format is fmt
    assert reading.result.fields == fields
    assert all(c.ok for c in reading.result.checks)
    assert reading.doubtful == ()
    assert reading.box.iou(doc.mrz_box) > 0.6
    assert abs(reading.angle) < 2.0
    assert reading.seconds < 5.0


def test_zone_crop_reads_as_lines(portraits: list[Pixels]) -> None:
    doc = _photo(DocumentSpec(MrzFormat.TD3, TD3_FIELDS, None, PX_PER_MM), portraits[1], 4)
    zones = find_mrz_zones(doc.pixels)
    assert len(zones) == 1
    zone = zones[0]
    assert (zone.lines, zone.chars_per_line) == (2, 44)
    assert zone.box.iou(doc.mrz_box) > 0.6
    assert ocr_lines(zone.crop) == list(doc.lines)


@pytest.mark.parametrize(
    ("fmt", "fields", "broken"),
    [
        (MrzFormat.TD3, TD3_FIELDS, "document_number"),
        (MrzFormat.TD1, TD1_FIELDS, "birth_date"),
        (MrzFormat.TD3, TD3_FIELDS, "composite"),
    ],
)
def test_broken_check_digit_reads_the_same_lines_and_names_the_check(
    fmt: MrzFormat, fields: MrzFields, broken: str, portraits: list[Pixels]
) -> None:
    doc = _photo(DocumentSpec(fmt, fields, broken, PX_PER_MM), portraits[2], 5)
    assert not doc.valid_check_digits
    reading = read_mrz(doc.pixels)
    assert reading.result.lines == doc.lines
    assert not reading.valid
    assert [c.name for c in reading.result.checks if not c.ok] == [broken]


@pytest.mark.parametrize("kind", DEGRADATIONS)
def test_moderate_degradation_reads_valid(
    kind: str, base_documents: list[RenderedDocument]
) -> None:
    right = 0
    for i, base in enumerate(base_documents):
        doc = degrade(base, kind, SEVERITY, seed=100 + i)
        reading = read_mrz(doc.pixels)
        _assert_not_wrong(reading, doc)
        if _right(reading, doc):
            right += 1
            assert reading.box.iou(doc.mrz_box) > 0.5, "the zone is where the truth says"
    assert right >= PER_KIND - 1, f"{kind}: {right} of {PER_KIND} read right"


def test_upside_down_zone_is_read_the_right_way_up(
    base_documents: list[RenderedDocument],
) -> None:
    doc = degrade(base_documents[0], "rotation_180", 0.0, seed=7)
    reading = read_mrz(doc.pixels)
    assert _right(reading, doc)
    assert abs(abs(reading.angle) - 180.0) < 2.0
    top_left = reading.quad[0]
    assert abs(top_left.x - doc.mrz_quad[0].x) < 20 and abs(top_left.y - doc.mrz_quad[0].y) < 20


def test_two_documents_side_by_side_are_ambiguous(
    base_documents: list[RenderedDocument],
) -> None:
    left, right = base_documents[0].pixels, base_documents[1].pixels
    height = max(left.shape[0], right.shape[0])
    pad = [
        np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), mode="edge") for p in (left, right)
    ]
    both = np.ascontiguousarray(np.concatenate(pad, axis=1))
    assert len(find_mrz_zones(both)) == 2
    with pytest.raises(AmbiguousMrz):
        read_mrz(both)


@pytest.mark.parametrize("photo", ["london/images/001_neutral.jpg", "scenes/2008_001009.jpg"])
def test_photo_without_a_document_has_no_mrz(photo: str, data_dir: Path) -> None:
    with pytest.raises(NoMrz):
        read_mrz(load_image(data_dir / photo).pixels)


def test_missing_tesseract_names_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, base_documents: list[RenderedDocument]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OcrUnavailable, match="tesseract-ocr"):
        read_mrz(base_documents[0].pixels)


def test_generator_is_deterministic(data_dir: Path, portraits: list[Pixels]) -> None:
    spec = DocumentSpec(MrzFormat.TD1, TD1_FIELDS, "composite", 8.0, seed=11)
    once = degrade(_photo(spec, portraits[0], 2), "perspective", 0.6, seed=3)
    again = degrade(_photo(spec, portraits[0], 2), "perspective", 0.6, seed=3)
    assert pixels_sha256(once.pixels) == pixels_sha256(again.pixels)
    assert once.mrz_quad == again.mrz_quad
    first = sample_set(data_dir / "london", 2, seed=5)
    second = sample_set(data_dir / "london", 2, seed=5)
    other = sample_set(data_dir / "london", 2, seed=6)
    assert [s.truth() for s in first] == [s.truth() for s in second]
    hashes = [pixels_sha256(s.document.pixels) for s in first]
    assert hashes == [pixels_sha256(s.document.pixels) for s in second]
    assert hashes != [pixels_sha256(s.document.pixels) for s in other]
