"""Read the MRZ of a document photo: locate the zone, OCR it with Tesseract, check, parse.

Tesseract runs as its command-line program (Debian ``tesseract-ocr``; PNG in on stdin, hOCR
out on stdout, one thread) with the MRZ alphabet as whitelist and no dictionaries. What it
reads is not taken as is:

* its character boxes are fitted to the MRZ's fixed grid of cells (:mod:`.cells`), so every
  line comes out exactly 30, 36 or 44 characters long, whatever Tesseract added or dropped;
* fillers are found by their shape (:mod:`.filler`): Tesseract reads OCR-B's ``<`` as ``K``;
* OCR-B templates give a second opinion on every cell (:mod:`.glyphs`): Tesseract mixes up
  ``0``/``O``, ``9``/``J``, ``8``/``B`` ... in document numbers, where such a slip can pass the
  check digit; where only letters may stand (names, states, sex), a digit becomes the best
  letter, and a cell the two still disagree on is *doubtful*.

The check digits (:func:`faceledger.document.mrz.parse`) then confirm or reject the reading:
a zone is read in up to three variants (contrast-normalised, binarised, as photographed) until
one parses valid with no doubtful cell, or two agree; the zone's way up comes from its fillers,
and the other way is tried once when nothing parses.

Errors: no zone on the image → :class:`NoMrz`; zones but none reads as an MRZ →
:class:`UnreadableMrz`; more than one zone reads as an MRZ → :class:`AmbiguousMrz`;
the ``tesseract`` program missing → :class:`OcrUnavailable`.
"""

from __future__ import annotations

import html
import io
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from faceledger.document.cells import Fillers, Glyph, Position, assemble, letters, nominal
from faceledger.document.filler import chevron, ncc_map, upside_down
from faceledger.document.geometry import Quad
from faceledger.document.glyphs import settle
from faceledger.document.locate import CROP_MARGIN, GLYPH_PX, MrzZone, find_mrz_zones
from faceledger.document.mrz import MrzResult, parse
from faceledger.document.raster import max_filter
from faceledger.errors import AmbiguousMrz, NoMrz, OcrUnavailable, UnreadableMrz
from faceledger.types import Box, Pixels

Gray = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]

WHITELIST = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
TIMEOUT_S = 30.0
"""Per Tesseract run; a zone crop takes about 0.15 s."""
MAX_ZONES = 4
"""Zones read per image at most (best first): more is a page of text, not a document."""

_CHAR = re.compile(
    r"<span class='ocrx_cinfo' title='x_bboxes (\d+) (\d+) (\d+) (\d+); x_conf ([\d.]+)'>"
    r"([^<]*)</span>"
)


@dataclass(frozen=True, eq=False)
class MrzReading:
    """An MRZ read from an image: the parsed result, where the zone was, how long it took."""

    result: MrzResult
    quad: Quad
    """The zone's corners in the image, in reading order (top-left of the text first)."""
    angle: float
    """Direction of the text in degrees, counter-clockwise from the image's x axis."""
    seconds: float
    doubtful: tuple[tuple[int, int], ...] = ()
    """(line, column) positions, from 0, in fields no check digit covers (names, states,
    sex, document type) where Tesseract and the OCR-B templates still disagree: the value
    there is as read and may be wrong even when :attr:`valid`."""

    @property
    def box(self) -> Box:
        xs, ys = [p.x for p in self.quad], [p.y for p in self.quad]
        return Box(min(xs), min(ys), max(xs), max(ys))

    @property
    def valid(self) -> bool:
        return self.result.valid

    def as_json(self) -> dict[str, object]:
        out = self.result.as_json()
        out["zone"] = {
            "quad": [[round(p.x, 1), round(p.y, 1)] for p in self.quad],
            "angle": round(self.angle, 2),
        }
        out["seconds"] = round(self.seconds, 3)
        out["doubtful"] = [list(p) for p in self.doubtful]
        return out


def tesseract() -> str:
    """Path of the ``tesseract`` program, or :class:`OcrUnavailable` saying what to install."""
    found = shutil.which("tesseract")
    if found is None:
        raise OcrUnavailable(
            "the tesseract OCR program is not installed: install the Debian package "
            "tesseract-ocr (apt-get install tesseract-ocr)"
        )
    return found


def _run(image: Gray, *, hocr: bool) -> str:
    """Tesseract on one grey image: plain text, or hOCR with character boxes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    args = [tesseract(), "stdin", "stdout", "--psm", "6", "--oem", "1", "-l", "eng"]
    args += ["-c", f"tessedit_char_whitelist={WHITELIST}"]
    args += ["-c", "load_system_dawg=0", "-c", "load_freq_dawg=0"]
    if hocr:
        args += ["-c", "hocr_char_boxes=1", "hocr"]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            args, input=buffer.getvalue(), capture_output=True, timeout=TIMEOUT_S, env=env
        )
    except FileNotFoundError as exc:
        raise OcrUnavailable(f"cannot run tesseract ({exc}): install tesseract-ocr") from exc
    except subprocess.TimeoutExpired:
        return ""
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        if "language" in message.lower():
            raise OcrUnavailable(f"tesseract cannot load English: {message[:200]}")
        return ""
    return done.stdout.decode(errors="replace")


def _glyphs(hocr: str) -> list[Glyph]:
    out = []
    for m in _CHAR.finditer(hocr):
        left, top, right, bottom = (float(v) for v in m.groups()[:4])
        text = html.unescape(m.group(6)).strip()
        out.append(Glyph(left, top, right, bottom, float(m.group(5)), text))
    return out


def normalise(crop: Gray) -> Floats:
    """Ink in [0, 1]: darkness relative to the local paper (a wide grey dilation, smoothed),
    stretched so that glyph strokes reach 1. Evens out glare, shadow and dim light."""
    grey = crop.astype(np.float32)
    paper = max_filter(grey, round(1.2 * GLYPH_PX))
    paper_img = Image.fromarray(paper.clip(0, 255).astype(np.uint8))
    smooth = np.asarray(paper_img.filter(ImageFilter.BoxBlur(GLYPH_PX / 3)), dtype=np.float32)
    ink = np.clip(1.0 - grey / np.maximum(smooth, 8.0), 0.0, 1.0).astype(np.float32)
    # stretch by the strongest ink nearby (a few glyphs around), so that glyphs under a glare
    # spot reach full strength too; the floor keeps blank paper from turning into noise
    near = max_filter(ink, (round(1.5 * GLYPH_PX), round(3 * GLYPH_PX)))
    near_img = Image.fromarray((near * 255).clip(0, 255).astype(np.uint8))
    local = np.asarray(near_img.filter(ImageFilter.BoxBlur(GLYPH_PX)), dtype=np.float32) / 255
    top = float(np.percentile(ink, 99.0))
    floor = max(0.25 * top, 0.08)
    out: Floats = np.clip(ink / np.maximum(local * 0.9, floor), 0.0, 1.0).astype(np.float32)
    return out


def _variants(crop: Gray, ink: Floats) -> Iterator[Gray]:
    """Images for Tesseract, best first: normalised, then binarised, then as photographed."""
    yield (255.0 * (1.0 - ink)).astype(np.uint8)
    yield np.where(ink > 0.45, 0, 255).astype(np.uint8)
    yield crop


def ocr_lines(crop: Gray) -> list[str]:
    """The MRZ lines of an upright zone crop (see :class:`MrzZone`), exactly sized with ``?``
    for unread cells; when no MRZ grid fits, Tesseract's own lines without spaces."""
    ink = normalise(crop)
    lines, _ = _grid_lines(next(_variants(crop, ink)), ink, _fillers(ink))
    if lines:
        return lines
    text = _run(crop, hocr=False)
    return [row for row in ("".join(line.split()) for line in text.splitlines()) if row]


def _fillers(ink: Floats) -> Fillers:
    pitch, cap = nominal(GLYPH_PX)
    template = chevron(pitch, cap)
    return Fillers(ncc_map(ink, template), template.shape)


def _grid_lines(
    image: Gray, ink: Floats, fillers: Fillers
) -> tuple[list[str], tuple[Position, ...]]:
    """One Tesseract run fitted to the cell grid, settled by the OCR-B templates."""
    pitch, cap = nominal(GLYPH_PX)
    span = (CROP_MARGIN[0], image.shape[1] - CROP_MARGIN[0])
    lines, grid = assemble(_glyphs(_run(image, hocr=True)), fillers, pitch, cap, span)
    if grid is None:
        return [], ()
    settled, doubts = settle(lines, grid, ink, grid.cap(cap))
    return letters(settled), doubts


@dataclass(frozen=True)
class _Attempt:
    result: MrzResult
    doubts: tuple[Position, ...]

    @property
    def rank(self) -> tuple[bool, int]:
        return self.result.valid, -len(self.doubts)


def _parse(lines: list[str], doubts: tuple[Position, ...], today: date | None) -> _Attempt | None:
    if not lines or any("?" in line for line in lines):
        return None
    try:
        return _Attempt(parse(lines, today=today), doubts)
    except UnreadableMrz:
        return None


def _read_zone(zone: MrzZone, today: date | None) -> tuple[_Attempt, MrzZone] | None:
    """The best reading of one zone and the zone the way up it was read; None when no
    variant reads as an MRZ either way up."""
    pitch, cap = nominal(GLYPH_PX)
    ink = normalise(zone.crop)
    if upside_down(ink, pitch, cap):
        zone, ink = zone.flipped(), np.ascontiguousarray(ink[::-1, ::-1])
    found = _best(zone.crop, ink, today, 3)
    if found is not None:
        return found, zone
    # the fillers decide the way up; with few or smudged ones, try the other way once
    zone, ink = zone.flipped(), np.ascontiguousarray(ink[::-1, ::-1])
    found = _best(zone.crop, ink, today, 1)
    return (found, zone) if found is not None else None


def _best(crop: Gray, ink: Floats, today: date | None, tries: int) -> _Attempt | None:
    """Best of up to ``tries`` variants: every check passing, then fewest doubtful cells; a
    reading valid without doubts, or one that two variants agree on, ends the search."""
    fillers = _fillers(ink)
    attempts: list[_Attempt] = []
    for image in list(_variants(crop, ink))[:tries]:
        attempt = _parse(*_grid_lines(image, ink, fillers), today)
        if attempt is None:
            continue
        if attempt.rank == (True, 0) or any(
            a.result.lines == attempt.result.lines for a in attempts
        ):
            return attempt
        attempts.append(attempt)
    return max(attempts, key=lambda a: a.rank) if attempts else None


def read_mrz(pixels: Pixels, *, today: date | None = None) -> MrzReading:
    """Locate, read and check the one MRZ on ``pixels`` (RGB)."""
    started = time.perf_counter()
    tesseract()
    zones = find_mrz_zones(pixels)[:MAX_ZONES]
    if not zones:
        raise NoMrz("no machine-readable zone found on the image")
    read = [r for r in (_read_zone(z, today) for z in zones) if r is not None]
    if not read:
        raise UnreadableMrz(
            f"{len(zones)} zone(s) with an MRZ's line structure found, none readable as an MRZ"
        )
    if len(read) > 1:
        raise AmbiguousMrz(f"{len(read)} machine-readable zones on one image")
    attempt, zone = read[0]
    seconds = time.perf_counter() - started
    return MrzReading(attempt.result, zone.quad, zone.angle, seconds, attempt.doubts)
