"""Straight text lines as geometry: join collinear fragments, group lines into MRZ candidates.

Pure geometry on a few hundred segments (no pixels), kept apart from :mod:`.locate` so each
stays small. A :class:`Line` is a centre line with a direction, an extent along it and a
thickness; its ``mass`` is how much of that extent carries ink, which tells a solid MRZ line
(every cell printed, fillers included) from words far apart that happen to be collinear.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

PARALLEL = math.cos(math.radians(5.0))
"""Fragments of one line, and lines of one zone, agree in direction within 5° (a keystone
tilts an MRZ's lines by far less than that)."""
STRAIGHT = math.cos(math.radians(2.0))


@dataclass(frozen=True, eq=False)
class Line:
    direction: F64
    """Unit vector along the line, pointing to +x (or +y when vertical)."""
    centre: F64
    lo: float
    """Extent along ``direction`` relative to ``centre`` (negative)."""
    hi: float
    thickness: float
    mass: float
    """Summed length of the fragments that make up the line."""

    @property
    def length(self) -> float:
        return self.hi - self.lo

    @property
    def start(self) -> F64:
        out: F64 = self.centre + self.lo * self.direction
        return out

    @property
    def end(self) -> F64:
        out: F64 = self.centre + self.hi * self.direction
        return out


def _joinable(frags: list[Line]) -> npt.NDArray[np.bool_]:
    """Pairs of fragments on one straight line with at most about a glyph between them."""
    d = np.array([f.direction for f in frags])
    c = np.array([f.centre for f in frags])
    t = np.array([f.thickness for f in frags])
    lo, hi = np.array([f.lo for f in frags]), np.array([f.hi for f in frags])
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    diff = c[None, :, :] - c[:, None, :]
    across = np.abs(np.einsum("ijk,ik->ij", diff, normal))
    along = np.einsum("ijk,ik->ij", diff, d)
    gap = np.maximum(along + lo[None, :] - hi[:, None], lo[:, None] - along - hi[None, :])
    thick = np.maximum(t[:, None], t[None, :])
    parallel = np.abs(d @ d.T)
    ok = (parallel > PARALLEL) & (across < 0.35 * thick) & (gap < 1.3 * thick)
    # a glare spot or a smudge can hide a few glyphs: bridge wider gaps only on one line
    ok |= (parallel > STRAIGHT) & (across < 0.2 * thick) & (gap < 4.5 * thick)
    ok &= np.minimum(t[:, None], t[None, :]) > 0.6 * thick
    out: npt.NDArray[np.bool_] = ok
    return out


def merge_fragments(frags: list[Line]) -> list[Line]:
    """Join fragments that continue each other into lines (connected groups of joinable
    pairs); a lone fragment is a line by itself."""
    if not frags:
        return []
    parent = list(range(len(frags)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(_joinable(frags), 1)), strict=True):
        ri, rj = root(int(i)), root(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    members: dict[int, list[Line]] = {}
    for i, frag in enumerate(frags):
        members.setdefault(root(i), []).append(frag)
    return [_joined(m) for m in members.values()]


def _joined(parts: list[Line]) -> Line:
    if len(parts) == 1:
        return parts[0]
    weights = np.array([p.length for p in parts])
    direction = sum(w * p.direction for w, p in zip(weights, parts, strict=True))
    direction = direction / np.linalg.norm(direction)
    centre = sum(w * p.centre for w, p in zip(weights, parts, strict=True)) / weights.sum()
    ends = np.array([[p.start, p.end] for p in parts]).reshape(-1, 2)
    proj = (ends - centre) @ direction
    thickness = float((weights * [p.thickness for p in parts]).sum() / weights.sum())
    mass = float(sum(p.mass for p in parts))
    return Line(direction, centre, float(proj.min()), float(proj.max()), thickness, mass)


def _next_line(a: Line, b: Line, ratios: list[float]) -> bool:
    """Whether ``b`` can be the MRZ line below ``a``: parallel, as long, lined up, at a line
    spacing that fits a format's length-to-spacing ratio."""
    if abs(float(a.direction @ b.direction)) < PARALLEL or not 0.8 < a.length / b.length < 1.25:
        return False
    normal = np.array([-a.direction[1], a.direction[0]])
    offset = b.centre - a.centre
    across, along = float(offset @ normal), float(offset @ a.direction)
    mean = (a.length + b.length) / 2
    fits = any(0.82 < mean / across / r < 1.18 for r in ratios) if across > 0 else False
    return fits and abs(along) < 0.08 * mean


def group_lines(lines: list[Line], ratios: Iterable[float]) -> list[list[Line]]:
    """Chains of 2 or 3 solid lines, each the next MRZ line of the one before, evenly spaced;
    top line first (``top`` meaning smaller along the lines' normal)."""
    solid = [line for line in lines if line.mass > 0.75 * line.length]
    wanted = list(ratios)
    below = {
        i: [j for j, b in enumerate(solid) if j != i and _next_line(a, b, wanted)]
        for i, a in enumerate(solid)
    }
    has_above = {j for js in below.values() for j in js}
    groups = []
    for i in range(len(solid)):
        if i in has_above:
            continue
        chain = [i]
        while below[chain[-1]] and len(chain) < 4:
            last = solid[chain[-1]]
            chain.append(min(below[chain[-1]], key=lambda j: _gap(last, solid[j])))
        if len(chain) in (2, 3) and _even([solid[k] for k in chain]):
            groups.append([solid[k] for k in chain])
    return groups


def _gap(a: Line, b: Line) -> float:
    return float(np.linalg.norm(b.centre - a.centre))


def _even(chain: list[Line]) -> bool:
    if len(chain) < 3:
        return True
    return 0.85 < _gap(chain[0], chain[1]) / _gap(chain[1], chain[2]) < 1.18
