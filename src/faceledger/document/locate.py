"""Find machine-readable zones on a photo or scan without OCR-ing the page.

An MRZ has a line structure nothing else on a document has: two or three long lines of
equal-pitch glyphs, equally long, evenly spaced by 4.23 mm, with a length-to-spacing ratio
fixed by the format (44 characters: ~26; 36: ~21.5; 30: ~18). The locator looks for exactly
that, in any orientation, with numpy and Pillow only:

1. a grey working copy (longer side 1000 px); a *black-hat* (grey closing minus image) marks
   thin dark strokes, relative to the local ground so that dim light and glare matter less;
2. text directions: the stroke mask closed with small squares for a few glyph pitches fuses
   runs of glyphs into elongated blobs; the peaks of their length-weighted direction
   histogram are the directions text runs in (one per document, whatever its rotation);
3. per direction, the mask is turned level and closed *along* the lines only (so lines never
   fuse, however tight), and its long, thin, solid bars are text lines; collinear pieces are
   joined (a narrow ``1`` or a glare spot does not cut a line);
4. lines pair up with parallel ones as long at the spacing a format's length implies; the
   zone's quad comes from the first and last lines' ends (a moderate keystone is followed),
   and the crop is that quad rectified so that capitals are :data:`GLYPH_PX` tall.

When a TD1's lines are seen but one of three is not (glare), the zone is widened to find it;
when no pair is found at all, a lone long line of glyph-like ink gets a zone two line spacings
either way. Which long side is the top is a guess (the MRZ sits at the document's bottom edge,
so the side with text-like ink beyond it is the document's body); the reader checks it by the
shape of the fillers, and :meth:`MrzZone.flipped` gives the other way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from PIL import Image

from faceledger.document.geometry import (
    Matrix,
    Quad,
    apply,
    homography,
    quad_box,
    rotation,
    to_quad,
    translation,
    warp,
)
from faceledger.document.raster import (
    Components,
    Mask,
    close_mask,
    components,
    extents,
    max_filter,
    min_filter,
)
from faceledger.document.text_lines import Line, group_lines, merge_fragments
from faceledger.types import Box, Pixels

Gray = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]

WORK_SIDE = 1000
"""Longer side of the working copy the zones are searched on."""
PITCHES = (7.0, 11.0, 17.0, 27.0)
"""Character pitches (working pixels) the closings are sized for: from a passport filling a
third of the frame to an ID card filling all of it."""
CAP_RATIO = 2.45 / 4.23
"""Capital height over line spacing (ICAO 9303)."""
GLYPH_PX = 34.0
"""Capital height in the crop: Tesseract reads 30-40 px glyphs best."""
CROP_MARGIN = (1.2 * GLYPH_PX, 0.6 * GLYPH_PX)
"""Margin (x, y) around the lines in a zone's crop: the lines run from x = CROP_MARGIN[0] to
the crop's width minus it."""
LENGTH_RATIOS = {44: 43.8 * 2.54 / 4.23, 36: 35.8 * 2.54 / 4.23, 30: 29.8 * 2.54 / 4.23}
"""Line length over line spacing for each line width."""


@dataclass(frozen=True, eq=False)
class MrzZone:
    """One candidate zone: where it is in the original image and its rectified crop."""

    quad: Quad
    """Corners in the original image, in the zone's reading order (may be upside down)."""
    angle: float
    """Direction of the text lines in degrees, counter-clockwise from the image's x axis."""
    lines: int
    chars_per_line: int
    """Estimated from the lines' length over their spacing: 30, 36 or 44."""
    crop: Gray
    """The zone rectified to horizontal, capitals about :data:`GLYPH_PX` tall, with margin."""
    score: float
    """How well the length-to-spacing ratio fits the format: 0 is perfect, more negative worse."""

    @property
    def box(self) -> Box:
        return quad_box(self.quad)

    def flipped(self) -> MrzZone:
        """The same zone read the other way up."""
        q = self.quad
        crop = np.ascontiguousarray(self.crop[::-1, ::-1])
        angle = (self.angle + 360.0) % 360.0 - 180.0
        return replace(self, quad=(q[2], q[3], q[0], q[1]), angle=angle, crop=crop)


def find_mrz_zones(pixels: Pixels) -> list[MrzZone]:
    """Every zone with an MRZ's line structure, best first; an empty list when none."""
    full = Image.fromarray(pixels).convert("L")
    scale = min(1.0, WORK_SIDE / max(full.size))
    size = (max(1, round(full.width * scale)), max(1, round(full.height * scale)))
    work = np.asarray(full.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    strokes = stroke_mask(work)
    zones, singles = [], []
    for angle in _directions(strokes):
        level, turn = _level(strokes, angle)
        for pitch in PITCHES:
            lines = _lines_along(level, turn, pitch)
            singles += [line for line in lines if line.length > 20.0 * line.thickness]
            for group in group_lines(lines, LENGTH_RATIOS.values()):
                zones.append(_zone(full, strokes, group, scale))
    if not zones:
        texty = [line for line in singles if _glyph_runs(strokes, line) > 0.4]
        zones = [_single(full, strokes, line, scale) for line in _longest(texty)]
    return _distinct(sorted(zones, key=lambda z: -z.score))


def _glyph_runs(strokes: Mask, line: Line) -> float:
    """Ink runs per expected glyph (pitch ~ the line's thickness) along the line's centre and
    along parallels a quarter of its thickness above and below, the fewest of the three: about
    1 or more for a line of glyphs, which fill the band's height, far fewer for an edge, a
    stripe or a shadow that merely looks long and thin."""
    n = max(2, int(line.length))
    t = np.linspace(line.lo, line.hi, n)
    normal = np.array([-line.direction[1], line.direction[0]])
    fewest = n
    for offset in (-0.25, 0.0, 0.25):
        pts = line.centre + t[:, None] * line.direction + offset * line.thickness * normal
        x = np.clip(pts[:, 0].astype(np.int64), 0, strokes.shape[1] - 1)
        y = np.clip(pts[:, 1].astype(np.int64), 0, strokes.shape[0] - 1)
        ink = strokes[y, x].astype(np.int8)
        fewest = min(fewest, int((np.diff(ink) == 1).sum()))
    return fewest / max(line.length / line.thickness, 1.0)


def _longest(lines: list[Line]) -> list[Line]:
    """The two longest solid lines that do not lie on one another."""
    out: list[Line] = []
    for line in sorted(lines, key=lambda x: -x.length):
        if line.mass > 0.75 * line.length and all(
            float(np.linalg.norm(line.centre - o.centre)) > o.thickness for o in out
        ):
            out.append(line)
    return out[:2]


def stroke_mask(work: npt.NDArray[np.float32]) -> Mask:
    """Dark thin strokes on a lighter ground: black-hat over local ground, thresholded above
    the image's own noise (so a dim, noisy photo does not turn into speckle)."""
    rolled = work + np.roll(work, 1, 0) + np.roll(work, 1, 1) + np.roll(work, (1, 1), (0, 1))
    smooth = (rolled / 4).astype(np.float32)
    ground = min_filter(max_filter(smooth, 7), 7)
    hat = ground - smooth
    noise = float(np.median(np.abs(smooth - np.roll(smooth, 2, 1)))) * 1.5 + 1.0
    mask: Mask = (hat > 0.22 * np.maximum(ground, 24.0)) & (hat > 3.0 * noise)
    return mask


def _shapes(mask: Mask) -> tuple[Components, F64, F64, F64, F64]:
    """Components of ``mask`` with their length, thickness, fill and direction (x >= 0)."""
    comp = components(mask)
    evals, evecs = np.linalg.eigh(comp.cov)
    length = np.sqrt(12.0 * np.maximum(evals[:, 1], 0.0))
    thick = np.sqrt(12.0 * np.maximum(evals[:, 0], 0.0))
    fill = comp.count / np.maximum(length * thick, 1.0)
    d = evecs[:, :, 1].copy()
    flip = (d[:, 0] < 0) | ((d[:, 0] == 0) & (d[:, 1] < 0))
    d[flip] *= -1.0
    return comp, length, thick, fill, d


def _directions(strokes: Mask) -> list[float]:
    """Directions (degrees, image axes) of text lines: the peaks of a length-weighted
    histogram of the directions of elongated blobs of the mask closed at each pitch."""
    angles, weights = [], []
    for pitch in PITCHES:
        _, length, thick, fill, d = _shapes(close_mask(strokes, max(3, round(0.45 * pitch))))
        keep = (length > 3.0 * thick) & (length > 3.0 * pitch) & (fill > 0.5)
        keep &= (thick > 0.45 * pitch) & (thick < 2.2 * pitch)
        angles.append(np.degrees(np.arctan2(d[keep, 1], d[keep, 0])) % 180.0)
        weights.append(length[keep])
    angle, weight = np.concatenate(angles), np.concatenate(weights)
    hist = np.bincount((angle // 2).astype(np.int64) % 90, weight, minlength=90)
    smooth = hist + 0.5 * (np.roll(hist, 1) + np.roll(hist, -1))
    peaks = [
        i
        for i in np.argsort(-smooth)[:4]
        if smooth[i] >= max(smooth[i - 1], smooth[(i + 1) % 90]) and smooth[i] > 0.2 * smooth.max()
    ]
    out = []
    for i in peaks:
        near = np.abs((angle - (2 * i + 1) + 90.0) % 180.0 - 90.0) < 3.0
        if weight[near].sum() < 40.0:
            continue
        offset = ((angle[near] - (2 * i + 1) + 90.0) % 180.0 - 90.0) @ weight[near]
        mean = (2 * i + 1) + offset / weight[near].sum()
        out.append(float(mean))
    return out


def _level(strokes: Mask, angle: float) -> tuple[Mask, Matrix]:
    """The mask turned so that lines at ``angle`` run level, and the turn (work → level)."""
    h, w = strokes.shape
    turn = rotation(angle, w / 2, h / 2)
    corners = apply(turn, np.array([(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    turn = translation(-lo[0], -lo[1]) @ turn
    size = (int(np.ceil(hi[0] - lo[0])), int(np.ceil(hi[1] - lo[1])))
    img = Image.fromarray(strokes.astype(np.uint8) * 255)
    level: Mask = np.asarray(warp(img, turn, size, Image.Resampling.NEAREST)) > 127
    return level, turn


def _lines_along(level: Mask, turn: Matrix, pitch: float) -> list[Line]:
    """Level text lines of glyphs ``pitch`` apart: the mask closed along the lines only (so
    lines never fuse), its long bars joined, turned back to working coordinates."""
    closed = close_mask(level, (3, max(3, round(0.9 * pitch))))
    comp, length, thick, fill, d = _shapes(closed)
    keep = (length > 4.0 * pitch) & (fill > 0.5) & (length > 4.0 * thick)
    keep &= (thick > 0.45 * pitch) & (thick < 2.2 * pitch)
    index = np.nonzero(keep)[0]
    if len(index) == 0:
        return []
    lo_e, hi_e = extents(comp, index, d[index])
    back: Matrix = np.linalg.inv(turn).astype(np.float64)
    lines = []
    for k, i in enumerate(index):
        ends: F64 = np.array(
            [comp.mean[i] + lo_e[k] * d[i], comp.mean[i] + hi_e[k] * d[i]], dtype=np.float64
        )
        ends = ends if d[i][0] >= 0 else ends[::-1]
        lines.append(_line(apply(back, ends), float(thick[i])))
    return [
        line
        for line in merge_fragments(lines)
        if line.length > 15.0 * pitch and line.length > 12.0 * line.thickness
    ]


def _line(ends: F64, thickness: float) -> Line:
    """A line from its two end points, pointing from the first to the second (all lines of
    one pass point the same way: along +x of the levelled mask)."""
    centre = ends.mean(axis=0)
    vec = ends[1] - ends[0]
    length = float(np.linalg.norm(vec))
    return Line(vec / max(length, 1e-9), centre, -length / 2, length / 2, thickness, length)


def _single(full: Image.Image, strokes: Mask, line: Line, scale: float) -> MrzZone:
    """A zone around one long line whose neighbours were not found (glare, a shadow): two
    line spacings either side, so that OCR finds the rest."""
    spacing = line.thickness / CAP_RATIO
    return _zone(full, strokes, [line, line], scale, spacing=spacing, extra=2.0)


def _zone(
    full: Image.Image,
    strokes: Mask,
    group: list[Line],
    scale: float,
    spacing: float | None = None,
    extra: float = 0.0,
) -> MrzZone:
    """The zone's quad from its first and last lines' end points (plus ``extra`` line
    spacings above and below), and its rectified crop."""
    first, last = group[0], group[-1]
    if spacing is None:
        spacing = float(np.linalg.norm(last.centre - first.centre)) / (len(group) - 1)
    length = max(first.length, last.length)
    lines = len(group)
    if lines == 2 and length / spacing < 19.8 and extra == 0.0:
        lines, extra = 3, 1.0  # a TD1's lengths with one line unseen: look above and below
    chars = 30 if lines == 3 else 44 if length / spacing > 24.0 else 36
    d = first.direction
    normal = np.array([-d[1], d[0]])
    half = spacing * CAP_RATIO / 2.0 + (0.1 + extra) * spacing
    top_start, top_end, bottom_start, bottom_end = _ends(first, last)
    quad = np.array(
        [
            top_start - half * normal,
            top_end - half * normal,
            bottom_end + half * normal,
            bottom_start + half * normal,
        ]
    )
    if _side_ink(strokes, quad[[3, 2]], quad[3] - quad[0], spacing) > _side_ink(
        strokes, quad[[0, 1]], quad[0] - quad[3], spacing
    ):
        quad = quad[[2, 3, 0, 1]]
    original = quad / scale
    crop = _rectify(full, original, spacing / scale)
    dx, dy = original[1] - original[0]
    angle = math.degrees(math.atan2(-dy, dx))
    score = -abs(length / spacing - LENGTH_RATIOS[chars]) / LENGTH_RATIOS[chars] - extra
    return MrzZone(to_quad(original), angle, lines, chars, crop, score)


def _ends(first: Line, last: Line) -> tuple[F64, F64, F64, F64]:
    """Start and end of the zone's first and last lines. MRZ lines are equally long and
    start together: when the two agree in length (within 4 %) their own ends are kept, which
    follows a keystone; otherwise one was cut short (glare, a run of fillers split off) and
    both take the union of their extents along their mean direction."""
    if abs(first.length - last.length) <= 0.04 * max(first.length, last.length):
        return first.start, first.end, last.start, last.end
    d = first.direction + last.direction
    d = d / np.linalg.norm(d)
    ts = [float((p - first.centre) @ d) for p in (first.start, first.end, last.start, last.end)]
    lo, hi = min(ts), max(ts)

    def at(line: Line, t: float) -> F64:
        out: F64 = line.centre + (t - float((line.centre - first.centre) @ d)) * d
        return out

    return at(first, lo), at(first, hi), at(last, lo), at(last, hi)


def _side_ink(strokes: Mask, edge: F64, outward: F64, spacing: float) -> float:
    """How text-like the band six line spacings deep beyond one long edge is: ink/no-ink
    changes counted along lines parallel to the edge, which a straight edge (the document's
    own border, its shadow) does not produce and glyphs and a portrait do."""
    out = outward / max(float(np.linalg.norm(outward)), 1e-9)
    t = np.linspace(0.02, 0.98, 96)[None, :, None]
    s = (np.linspace(0.5, 6.0, 12) * spacing)[:, None, None]
    pts = edge[0] + (edge[1] - edge[0]) * t + out * s
    x, y = pts[..., 0].astype(np.int64), pts[..., 1].astype(np.int64)
    inside = (x >= 0) & (y >= 0) & (x < strokes.shape[1]) & (y < strokes.shape[0])
    ink = np.zeros(x.shape, dtype=np.int8)
    ink[inside] = strokes[y[inside], x[inside]]
    return float(np.abs(np.diff(ink, axis=1)).sum())


def _rectify(full: Image.Image, quad: F64, spacing: float) -> Gray:
    """Warp ``quad`` (original pixels) to an upright rectangle with a margin all round."""
    zoom = GLYPH_PX / (spacing * CAP_RATIO)
    width = float(np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    height = float(np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    mx, my = CROP_MARGIN
    w, h = width * zoom, height * zoom
    dst = [(mx, my), (mx + w, my), (mx + w, my + h), (mx, my + h)]
    hmat = homography([(float(p[0]), float(p[1])) for p in quad], dst)
    size = (round(w + 2 * mx), round(h + 2 * my))
    out = warp(full, hmat, size, Image.Resampling.BICUBIC, fill=255)
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8))


def _distinct(zones: list[MrzZone]) -> list[MrzZone]:
    """Drop zones that overlap a better one (the same lines found at another pitch)."""
    kept: list[MrzZone] = []
    for zone in zones:
        if all(zone.box.iou(k.box) < 0.3 for k in kept):
            kept.append(zone)
    return kept
