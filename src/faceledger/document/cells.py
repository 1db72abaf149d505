"""Put OCR'd characters into the MRZ's fixed grid of character cells.

Every MRZ character sits in a cell of one fixed pitch (2.54 mm) and every line has exactly
30, 36 or 44 of them, all lines left-aligned. Tesseract's character boxes and the filler
shapes (:mod:`.filler`) both land on that grid, so fitting it turns OCR output into
exactly-sized lines: a character Tesseract added between two cells, or a stray box spanning
several, lose to the one that sits in the cell; a filler is a filler by its shape whatever
Tesseract made of it; a cell nobody read stays unknown (``?``) unless the OCR-B templates
recognise it clearly (:mod:`.glyphs`), and a line with an unknown cell is refused, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from faceledger.document.filler import FILLER_SCORE, peaks
from faceledger.document.mrz_correct import CONFUSIONS

Floats = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

UNKNOWN = "?"
Position = tuple[int, int]
"""(line, column), both from 0."""
LETTER_SPANS: dict[tuple[int, int], tuple[tuple[int, int, int], ...]] = {
    (2, 44): ((0, 0, 44), (1, 10, 13), (1, 20, 21)),
    (2, 36): ((0, 0, 36), (1, 10, 13), (1, 20, 21)),
    (3, 30): ((0, 0, 5), (1, 7, 8), (1, 15, 18), (2, 0, 30)),
}
"""(line, start, end) of the positions that hold only letters or fillers (document type,
states, names, sex), by (lines, width): no check digit covers any of them."""
LETTER_FOR_DIGIT = {digit: letter for letter, digit in reversed(CONFUSIONS)}
WIDTHS = {3: (30,), 2: (44, 36)}
"""Line widths an MRZ of so many lines can have."""
CONFIDENT = 80.0
"""Tesseract confidence (0-100) above which a character box anchors the grid."""


@dataclass(frozen=True)
class Glyph:
    """One character Tesseract read, with its box in crop pixels and its confidence."""

    left: float
    top: float
    right: float
    bottom: float
    confidence: float
    text: str

    @property
    def x(self) -> float:
        return (self.left + self.right) / 2

    @property
    def y(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def width(self) -> float:
        return self.right - self.left


@dataclass(frozen=True)
class Grid:
    """Cell ``k`` (from 0) of every line is centred at x = (a + b·j) / (1 + c·j), j = first + k.

    The projective term ``c`` absorbs what the zone's rectification left of a perspective
    (the pitch then changes steadily along the line) instead of letting it shift cells; a
    shift per line absorbs a shear (the zone's left edge is found from ink, and a narrow ``I``
    starts further into its cell than an ``O``).
    """

    a: float
    b: float
    c: float
    first: int
    width: int
    rows: tuple[float, ...]
    """y of each line's centre."""
    shifts: tuple[float, ...] = ()
    """x shift of each line's cells (empty: none)."""

    def centre(self, k: int, row: int | None = None) -> float:
        j = self.first + k
        shift = self.shifts[row] if row is not None and self.shifts else 0.0
        return (self.a + self.b * j) / (1.0 + self.c * j) + shift

    @property
    def pitch(self) -> float:
        """Mean pitch over the line."""
        return (self.centre(self.width - 1) - self.centre(0)) / max(self.width - 1, 1)

    def resized(self, first: int, width: int) -> Grid:
        return Grid(self.a, self.b, self.c, first, width, self.rows, self.shifts)

    def cap(self, nominal_cap: float) -> float:
        """Capital height from the line spacing (ICAO: 2.45 mm caps, 4.23 mm lines)."""
        if len(self.rows) < 2:
            return nominal_cap
        spacing = (self.rows[-1] - self.rows[0]) / (len(self.rows) - 1)
        return spacing * 2.45 / 4.23


@dataclass(frozen=True)
class Fillers:
    """The ``<`` correlation map of a crop and the template's size."""

    score: Floats
    shape: tuple[int, int]

    def at(self, x: float, y: float, pitch: float, cap: float) -> float:
        """Best filler score for a glyph centred near ``(x, y)``."""
        th, tw = self.shape
        x0, x1 = round(x - tw / 2 - 0.3 * pitch), round(x - tw / 2 + 0.3 * pitch) + 1
        y0, y1 = round(y - th / 2 - 0.25 * cap), round(y - th / 2 + 0.25 * cap) + 1
        window = self.score[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
        return float(window.max()) if window.size else -1.0

    def centres(self, pitch: float) -> F64:
        """(x, y) centres of the filler shapes found."""
        found = peaks(self.score, FILLER_SCORE, max(3, round(0.6 * pitch)))
        th, tw = self.shape
        out: F64 = np.stack([found[:, 1] + tw / 2, found[:, 0] + th / 2], axis=1).astype(np.float64)
        return out


def assemble(
    glyphs: list[Glyph],
    fillers: Fillers,
    pitch: float,
    cap: float,
    span: tuple[float, float] | None = None,
) -> tuple[list[str], Grid | None]:
    """The MRZ lines in the crop, cell by cell, and the grid; no lines when no MRZ grid fits.

    ``pitch`` and ``cap`` are the nominal character pitch and capital height in the crop;
    ``span`` is where the locator saw the lines begin and end (x in the crop), which decides
    which cells are the zone's when Tesseract also read specks in the margins.
    """
    anchors = [
        g
        for g in glyphs
        if g.confidence >= CONFIDENT
        and 0 < g.width <= 1.3 * pitch
        and 0.6 * cap <= g.bottom - g.top <= 1.4 * cap
    ]
    marks = fillers.centres(pitch)
    points = np.concatenate([np.array([(g.x, g.y) for g in anchors]).reshape(-1, 2), marks])
    rows = _rows(points[:, 1], cap * 4.23 / 2.45)
    if len(rows) not in WIDTHS or len(points) < 10:
        return [], None
    grid = _fit(points[:, 0], pitch, rows, fillers, cap)
    if grid is not None and span is not None:
        grid = _within(grid, span, points[:, 0])
    if grid is None:
        return [], None
    grid = _sheared(grid, points, cap * 4.23 / 2.45)
    return [_line(grid, r, glyphs, fillers, cap) for r in range(len(grid.rows))], grid


def _sheared(grid: Grid, points: F64, spacing: float) -> Grid:
    """The grid with each line's own shift: the median offset of that line's points from
    their nearest cell centres."""
    shifts = []
    for row in grid.rows:
        xs = points[np.abs(points[:, 1] - row) < 0.5 * spacing, 0]
        j = np.round(_cell_numbers(grid, xs))
        offset = xs - (grid.a + grid.b * j) / (1.0 + grid.c * j)
        offset = offset[np.abs(offset) < 0.4 * grid.pitch]
        shifts.append(float(np.median(offset)) if len(offset) >= 3 else 0.0)
    return Grid(grid.a, grid.b, grid.c, grid.first, grid.width, grid.rows, tuple(shifts))


def _rows(ys: F64, spacing: float) -> list[float]:
    """Line centres: clusters of y values split at gaps over 0.6 line spacings; of more than
    three, the run of 2 or 3 at the MRZ's spacing whose sparsest line has the most points
    (a printed line that strayed into the crop has far fewer characters than an MRZ line)."""
    if len(ys) == 0:
        return []
    ordered = np.sort(ys)
    cuts = np.nonzero(np.diff(ordered) > 0.6 * spacing)[0] + 1
    groups = [g for g in np.split(ordered, cuts) if len(g) >= 4]
    centres = [float(np.median(g)) for g in groups]
    if len(centres) <= 3:
        return centres
    best: tuple[float, list[float]] = (0.0, [])
    for n in (2, 3):
        for i in range(len(centres) - n + 1):
            run = centres[i : i + n]
            if all(0.8 < (b - a) / spacing < 1.25 for a, b in pairwise(run)):
                fewest = min(len(g) for g in groups[i : i + n]) * (1.0 if n == 2 else 1.6)
                best = max(best, (fewest, run), key=lambda x: x[0])
    return best[1]


def _fit(xs: F64, pitch: float, rows: list[float], fillers: Fillers, cap: float) -> Grid | None:
    """The cell grid through the points, sized to an MRZ width.

    The mean pitch and phase come from a search (the pitch that puts the most points at cell
    centres); the model then grows from the middle of the line outwards, refitted at each
    step (linear, then projective) on the points within 0.3 pitch of a cell centre, so that
    a drifting pitch is followed instead of shifting the far cells, and strays (specks, a box
    spanning two glyphs) never count.
    """
    best = (-1.0, pitch, 0.0)
    for p in np.linspace(0.85 * pitch, 1.15 * pitch, 121):
        z = np.exp(2j * np.pi * xs / p).mean()
        best = max(best, (float(abs(z)), float(p), float(np.angle(z) * p / (2 * np.pi))))
    strength, p, origin = best
    if strength < 0.4:
        return None
    model = (origin, p, 0.0)
    middle, reach = float(np.median(xs)), float(np.ptp(xs)) / 2 + 1.0
    for part, projective in ((0.35, False), (0.7, True), (1.0, True), (1.0, True)):
        near = xs[np.abs(xs - middle) <= part * reach]
        ks, inliers = _cells_of(near, model, p)
        if len(np.unique(ks[inliers])) < 4:
            return None
        model = _model(ks[inliers], near[inliers], projective)
    ks, inliers = _cells_of(xs, model, p)
    ks = ks[inliers]
    a, b, c = model
    first, last = int(ks.min()), int(ks.max())
    width = min(WIDTHS[len(rows)], key=lambda n: abs(n - (last - first + 1)))
    if abs(width - (last - first + 1)) > 3 or abs(c) * (last - first) > 0.3:
        return None
    counts = np.bincount((ks - first).astype(np.int64))
    grid = Grid(a, b, c, first, last - first + 1, tuple(rows))
    return _resize(grid, width, counts, fillers, cap)


def _cells_of(
    xs: F64, model: tuple[float, float, float], pitch: float
) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Nearest cell number of each x under ``model``, and whether it is within 0.3 pitch."""
    a, b, c = model
    ks = np.round((xs - a) / (b - c * xs))
    inliers = np.abs(xs - (a + b * ks) / (1.0 + c * ks)) < 0.3 * pitch
    return ks, inliers


def _model(ks: F64, xs: F64, projective: bool) -> tuple[float, float, float]:
    """Least squares for x = (a + b·k) / (1 + c·k), linear as x = a + b·k - c·k·x (c = 0
    when not ``projective``)."""
    columns = [np.ones_like(ks), ks] + ([-ks * xs] if projective else [])
    solution = np.linalg.lstsq(np.stack(columns, axis=1), xs, rcond=None)[0]
    a, b = float(solution[0]), float(solution[1])
    return a, b, float(solution[2]) if projective else 0.0


def _resize(
    grid: Grid, width: int, counts: npt.NDArray[np.int64], fillers: Fillers, cap: float
) -> Grid:
    """Grow or trim the run of cells at whichever end has the more (or less) evidence."""
    first, n = grid.first, grid.width
    while n != width:
        g = grid.resized(first, n)
        if n > width:
            left, right = counts[first - grid.first], counts[first + n - 1 - grid.first]
            first, n = (first + 1, n - 1) if left <= right else (first, n - 1)
        else:
            before = _evidence(g, -1, fillers, cap)
            after = _evidence(g, n, fillers, cap)
            first, n = (first - 1, n + 1) if before > after else (first, n + 1)
    return grid.resized(first, n)


def _within(grid: Grid, span: tuple[float, float], xs: F64) -> Grid:
    """The run of cells (of the grid's width) whose ends best match ``span``, each cell
    holding no point counting against it as much as a pitch of mismatch."""
    pitch = grid.pitch
    occupied = {round(v) for v in _cell_numbers(grid, xs)}

    def cost(first: int) -> float:
        run = grid.resized(first, grid.width)
        ends = abs(run.centre(0) - span[0] - pitch / 2) + abs(
            run.centre(grid.width - 1) - span[1] + pitch / 2
        )
        empty = sum(first + k not in occupied for k in range(grid.width))
        return ends / pitch + empty

    best = min(range(grid.first - 3, grid.first + 4), key=cost)
    return grid.resized(best, grid.width)


def _cell_numbers(grid: Grid, xs: F64) -> F64:
    out: F64 = (xs - grid.a) / (grid.b - grid.c * xs)
    return out


def _evidence(grid: Grid, k: int, fillers: Fillers, cap: float) -> float:
    return max(fillers.at(grid.centre(k, r), y, grid.pitch, cap) for r, y in enumerate(grid.rows))


def _line(grid: Grid, r: int, glyphs: list[Glyph], fillers: Fillers, cap: float) -> str:
    spacing, row = cap * 4.23 / 2.45, grid.rows[r]
    mine = [g for g in glyphs if abs(g.y - row) < 0.5 * spacing and g.width <= 1.6 * grid.pitch]
    return "".join(_cell(grid, k, r, mine, fillers, cap) for k in range(grid.width))


def _cell(grid: Grid, k: int, r: int, glyphs: list[Glyph], fillers: Fillers, cap: float) -> str:
    """A filler by shape; otherwise the most confident character read in the cell."""
    x, row = grid.centre(k, r), grid.rows[r]
    score = fillers.at(x, row, grid.pitch, cap)
    if score >= FILLER_SCORE:
        return "<"
    here = [g for g in glyphs if abs(g.x - x) <= 0.5 * grid.pitch and g.text]
    letters = [g for g in here if g.text != "<"]
    if letters:
        return max(letters, key=lambda g: g.confidence).text[0]
    if here and score > 0.5:
        return "<"
    return UNKNOWN


def nominal(glyph_px: float) -> tuple[float, float]:
    """Nominal (pitch, capital height) in a crop whose capitals are ``glyph_px`` tall."""
    return glyph_px * 2.54 / 2.45, glyph_px


def letter_positions(lines: list[str]) -> set[Position]:
    spans = LETTER_SPANS.get((len(lines), len(lines[0]) if lines else 0), ())
    return {(row, col) for row, start, end in spans for col in range(start, end)}


def letters(lines: list[str]) -> list[str]:
    """Digits where only letters may stand turned into the letter they are mistaken for
    (``0`` → ``O``, ``1`` → ``I`` ...): a check digit covers none of these, so no check could."""
    rows = [list(line) for line in lines]
    for row, col in letter_positions(lines):
        rows[row][col] = LETTER_FOR_DIGIT.get(rows[row][col], rows[row][col])
    return ["".join(row) for row in rows]
