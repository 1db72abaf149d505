"""OCR-B glyph templates: a second opinion on every MRZ cell that Tesseract's model lacks.

Tesseract's English model reads OCR-B letters well but mixes up look-alikes across the
letter/digit line (``0``/``O``/``D``, ``9``/``J``, ``6``/``E``, ``8``/``B``, ``5``/``S``,
``1``/``I``/``T`` ...). In names and country codes the position settles it (letters only),
but a document number or optional data mixes both, and such slips can pass the check digit
(``J`` and ``9`` both count 9) or cancel out within one number. ICAO 9303 prints every MRZ in
OCR-B, so correlating each cell with OCR-B's own drawing of every character gives an
independent reading: on the synthetic set it alone classifies 99.9 % of cells right.

The reader (:mod:`.ocr`) keeps Tesseract's character unless the templates prefer another by a
clear margin, or fills a cell Tesseract left empty. The font ships inside the package, so the
second opinion is always there (``benchmarks/documents.py --no-templates`` measures the reading
without it). The synthetic documents are printed in this very font: real documents' OCR-B
differs slightly, and how often the templates decide there is not measured.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from faceledger.document.cells import LETTER_FOR_DIGIT, Grid, Position, letter_positions

Floats = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

OCRB_FONT = Path(__file__).resolve().parent / "fonts" / "OCRB.otf"
"""Matthew Skala's public-domain OCR-B, shipped in the package (``fonts/LICENSE.md``): the
templates are always there. Without them the reading is Tesseract's alone, which on the
synthetic benchmark called 12 of 200 reads valid with a wrong field (a ``<`` read as ``K``,
which has the same check-digit value)."""

CLASSES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
"""What a cell can hold; the filler is a class too, which catches fillers too blurred for the
drawn chevron of :mod:`.filler` that Tesseract read as ``K``."""
LETTERS = CLASSES[:26]
MARGIN = 0.05
SAY = 0.5
"""Below this correlation the best template fits nothing well: no override, no doubt."""
FILL = 0.6
"""A cell Tesseract left empty is only filled by a template that fits at least this well
(right choices score 0.75 and more on clean cells)."""
"""How much better the templates' choice must correlate than Tesseract's to replace it
(right choices win by 0.09 or more in 99 % of cells on the synthetic set)."""
SCALE = 0.5
"""Templates are matched at half the crop's resolution: capitals of ~17 px still separate
every character, at a quarter of the cost."""


def available() -> bool:
    return OCRB_FONT.is_file()


@lru_cache(maxsize=8)
def templates(pitch: int, cap: int) -> tuple[Floats, ...]:
    """:data:`CLASSES` in OCR-B, capitals ``cap`` px tall, each in a ``pitch`` × 1.3
    ``cap`` cell with the capitals centred vertically (ink 1, ground 0), mean removed."""
    probe = ImageFont.truetype(str(OCRB_FONT), 200)
    _, top, _, bottom = probe.getbbox("H")
    font = ImageFont.truetype(str(OCRB_FONT), max(4, round(cap * 200 / (bottom - top))))
    height = round(1.3 * cap)
    out = []
    for char in CLASSES:
        img = Image.new("L", (pitch, height), 0)
        ImageDraw.Draw(img).text((0, 1.15 * cap), char, font=font, fill=255, anchor="ls")
        t = np.asarray(img, dtype=np.float32) / 255.0
        t -= t.mean()
        out.append((t / max(float(np.sqrt((t**2).sum())), 1e-6)).astype(np.float32))
    return tuple(out)


def cell_scores(ink: Floats, grid: Grid, cap: float) -> F64:
    """(lines, width, 36): each character's best correlation with each cell, allowing shifts
    of 0.3 pitch sideways and 0.25 capital height up or down."""
    small = _half(ink)
    pitch_s, cap_s = grid.pitch * SCALE, cap * SCALE
    table = templates(max(3, round(pitch_s)), max(3, round(cap_s)))
    th, tw = table[0].shape
    out = np.full((len(grid.rows), grid.width, len(table)), -1.0)
    for r, row in enumerate(grid.rows):
        top = round(row * SCALE - th / 2 - 0.25 * cap_s)
        band = small[max(0, top) : max(0, top + th + round(0.5 * cap_s) + 1)]
        if band.shape[0] < th:
            continue
        maps = _ncc_maps(band, table)
        for k in range(grid.width):
            left = round(grid.centre(k, r) * SCALE - tw / 2 - 0.3 * pitch_s)
            window = maps[:, :, max(0, left) : max(0, left + round(0.6 * pitch_s) + 1)]
            if window.size:
                out[r, k] = window.max(axis=(1, 2))
    return out


def _half(ink: Floats) -> Floats:
    h, w = (ink.shape[0] // 2) * 2, (ink.shape[1] // 2) * 2
    quads = ink[:h, :w].reshape(h // 2, 2, w // 2, 2)
    out: Floats = quads.mean(axis=(1, 3)).astype(np.float32)
    return out


def _ncc_maps(band: Floats, table: tuple[Floats, ...]) -> F64:
    """Correlation maps of every (zero-mean, unit-norm) template over ``band`` at once: one
    forward FFT of the band, one inverse per template, one local-spread table for all."""
    h, w = band.shape
    th, tw = table[0].shape
    shape = (h + th, w + tw)
    spectrum = np.fft.rfft2(band, shape)
    kernels = np.fft.rfft2(np.stack([t[::-1, ::-1] for t in table]), shape)
    corr = np.fft.irfft2(spectrum[None] * kernels, shape)[:, th - 1 : h, tw - 1 : w]
    table_sum = np.pad(band.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    table_sq = np.pad(band.astype(np.float64) ** 2, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    n = th * tw
    total = _box(table_sum, th, tw)
    spread = np.sqrt(np.maximum(_box(table_sq, th, tw) - total * total / n, 1e-6))
    out: F64 = corr / spread[None]
    return out


def _box(table: F64, th: int, tw: int) -> F64:
    out: F64 = table[th:, tw:] - table[:-th, tw:] - table[th:, :-tw] + table[:-th, :-tw]
    return out


def second_opinion(char: str, scores: F64, letters_only: bool) -> str:
    """``char`` as Tesseract read it, unless the templates prefer another character by
    :data:`MARGIN` (or Tesseract read nothing, ``?``, and the best template fits well); only
    letters and the filler where only letters may stand. Templates that fit nothing well (a
    noisy, blurred cell) have no say."""
    allowed = LETTERS + "<" if letters_only else CLASSES
    ranked = sorted(allowed, key=lambda c: -scores[CLASSES.index(c)])
    best, top = ranked[0], float(scores[CLASSES.index(ranked[0])])
    if top < (FILL if char not in CLASSES else SAY):
        return char
    mine = float(scores[CLASSES.index(char if char in CLASSES else ranked[1])])
    return best if top - mine >= MARGIN else char


def settle(
    lines: list[str], grid: Grid, ink: Floats, cap: float
) -> tuple[list[str], tuple[Position, ...]]:
    """Every cell with the templates' second opinion, and the *doubtful* cells: positions no
    check digit covers where the reading still differs from a template that fits well. A
    slip there would pass every check, so the reader prefers a variant without doubts."""
    if not available():
        return lines, ()
    letters_only = letter_positions(lines)
    scores = cell_scores(ink, grid, cap)
    rows = [list(line) for line in lines]
    doubts = []
    for r, row in enumerate(rows):
        for k, char in enumerate(row):
            if (r, k) not in letters_only:
                row[k] = second_opinion(char, scores[r, k], False)
                continue
            best = _best(scores[r, k], LETTERS + "<")
            strong = float(scores[r, k][CLASSES.index(best)]) >= SAY
            if char.isdigit():  # certainly wrong where only letters may stand
                row[k] = best if strong else LETTER_FOR_DIGIT.get(char, char)
            else:
                row[k] = second_opinion(char, scores[r, k], True)
            if strong and row[k] != best:
                doubts.append((r, k))
    return ["".join(row) for row in rows], tuple(doubts)


def _best(scores: F64, allowed: str) -> str:
    return max(allowed, key=lambda c: float(scores[CLASSES.index(c)]))
