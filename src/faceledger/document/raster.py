"""Small raster operations in numpy that the MRZ locator needs and Pillow lacks or makes slow.

Pillow's ``MaxFilter``/``MinFilter`` are rank filters, quadratic in the kernel size; the
separable versions here are linear. Connected components are labelled on horizontal *runs*
rather than pixels: a closed text mask has a few thousand runs where it has a million pixels,
so union-find over runs is fast in numpy, and the shape statistics that the locator needs
(area, centroid, second moments) have closed forms per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def _extreme_1d(img: Floats, size: int, axis: int, take_max: bool) -> Floats:
    if size <= 1:
        return img
    before = size // 2
    after = size - 1 - before
    pad = [(0, 0), (0, 0)]
    pad[axis] = (before, after)
    padded = np.pad(img, pad, mode="edge")
    n = img.shape[axis]
    out = padded.take(range(0, n), axis=axis).copy()
    combine = np.maximum if take_max else np.minimum
    for shift in range(1, size):
        combine(out, padded.take(range(shift, shift + n), axis=axis), out=out)
    return out


def max_filter(img: Floats, size: int | tuple[int, int]) -> Floats:
    """Grey dilation by a ``size`` rectangle (rows, columns), edges replicated."""
    rows, cols = (size, size) if isinstance(size, int) else size
    return _extreme_1d(_extreme_1d(img, cols, 1, True), rows, 0, True)


def min_filter(img: Floats, size: int | tuple[int, int]) -> Floats:
    """Grey erosion by a ``size`` rectangle (rows, columns), edges replicated."""
    rows, cols = (size, size) if isinstance(size, int) else size
    return _extreme_1d(_extreme_1d(img, cols, 1, False), rows, 0, False)


def close_mask(mask: Mask, size: int | tuple[int, int]) -> Mask:
    """Binary closing (dilate, then erode) by a rectangle."""
    grown = max_filter(mask.astype(np.float32), size)
    return min_filter(grown, size) > 0.5


@dataclass(frozen=True)
class Components:
    """4-connected components of a mask with their first and second moments."""

    count: npt.NDArray[np.float64]
    mean: F64
    """(N, 2): x, y of each centroid (pixel centres at +0.5)."""
    cov: F64
    """(N, 2, 2) covariance of the pixel centres."""
    run_row: Ints
    run_start: Ints
    run_end: Ints
    run_label: Ints

    def __len__(self) -> int:
        return len(self.count)


def _runs(mask: Mask) -> tuple[Ints, Ints, Ints]:
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows_s, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return rows_s.astype(np.int64), starts.astype(np.int64), ends.astype(np.int64)


def _run_edges(row: Ints, start: Ints, end: Ints, width: int) -> tuple[Ints, Ints]:
    """Pairs of runs in consecutive rows that overlap (searchsorted on row-major keys)."""
    stride = width + 1
    start_key, end_key = row * stride + start, row * stride + end
    below = (row + 1) * stride
    lo = np.searchsorted(end_key, below + start, side="right")
    hi = np.searchsorted(start_key, below + end, side="left")
    counts = np.maximum(hi - lo, 0)
    src = np.repeat(np.arange(len(row)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    dst = np.repeat(lo, counts) + offsets
    return src, dst


def _union(n: int, src: Ints, dst: Ints) -> Ints:
    """Component root of each node: hook the larger root under the smaller, compress."""
    parent = np.arange(n)
    while True:
        a, b = parent[src], parent[dst]
        low, high = np.minimum(a, b), np.maximum(a, b)
        before = parent.copy()
        np.minimum.at(parent, high, low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
        if np.array_equal(parent, before):
            return parent


def components(mask: Mask) -> Components:
    """Label ``mask`` and return every component's moments."""
    row, start, end = _runs(mask)
    src, dst = _run_edges(row, start, end, mask.shape[1])
    roots = _union(len(row), src, dst)
    _, label = np.unique(roots, return_inverse=True)
    label = label.astype(np.int64)
    n = int(label.max()) + 1 if len(label) else 0
    length = (end - start).astype(np.float64)
    y = row.astype(np.float64) + 0.5
    # sums of x and x² over the pixel centres start+0.5 .. end-0.5 (midpoint rule, exact)
    sx = length * (start + end) / 2.0
    sxx = (end.astype(np.float64) ** 3 - start.astype(np.float64) ** 3) / 3.0 - length / 12.0
    sums = [np.bincount(label, w, minlength=n) for w in (length, sx, length * y, sxx, sx * y)]
    count, sum_x, sum_y, sum_xx, sum_xy = (v.astype(np.float64) for v in sums)
    sum_yy = np.bincount(label, length * y * y, minlength=n)
    mx, my = sum_x / count, sum_y / count
    cxx = sum_xx / count - mx * mx
    cyy = sum_yy / count - my * my
    cxy = sum_xy / count - mx * my
    cov = np.stack([np.stack([cxx, cxy], -1), np.stack([cxy, cyy], -1)], -2)
    return Components(count, np.stack([mx, my], -1), cov, row, start, end, label)


def extents(comp: Components, index: Ints, directions: F64) -> tuple[F64, F64]:
    """Min and max projection of the pixels of components ``index`` onto their unit
    ``directions`` (one row per component), relative to each component's centroid."""
    lookup = np.full(len(comp), -1, dtype=np.int64)
    lookup[index] = np.arange(len(index))
    k = lookup[comp.run_label]
    sel = k >= 0
    k = k[sel]
    d = directions[k]
    centre = comp.mean[index][k]
    y = comp.run_row[sel] + 0.5 - centre[:, 1]
    first = (comp.run_start[sel] + 0.5 - centre[:, 0]) * d[:, 0] + y * d[:, 1]
    last = (comp.run_end[sel] - 0.5 - centre[:, 0]) * d[:, 0] + y * d[:, 1]
    lo = np.full(len(index), np.inf)
    hi = np.full(len(index), -np.inf)
    np.minimum.at(lo, k, np.minimum(first, last))
    np.maximum.at(hi, k, np.maximum(first, last))
    return lo, hi
