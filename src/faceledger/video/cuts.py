"""Shot-cut detection between consecutive sampled frames, so that no track crosses an edit.

Two measures on a small copy of each frame; a cut when either is high:

- colour: half the L1 distance between hue-saturation histograms (0..1). Catches a cut between
  shots of different palettes whatever their layout.
- spatial: how much of each frame cannot be found in the other. Both frames are shrunk to a
  grey ``size`` x ``size`` image of 4 x 4 blocks; each block is searched for in the other frame
  within an eighth of the frame either way, and the distance is the mean absolute difference
  (0..1) of the best match of the block at the lower quartile, averaged over both directions.
  A cut between shots of similar palettes leaves no block with a good match; a pan, a zoom or
  a person walking up to the camera leaves at least a quarter of the frame findable.

Tuned on video_01 and video_02, which have no cuts: over every pair of frames 1/10 s to 1/2 s
apart (10 down to 2 sampled frames a second, at every phase) colour is at most 0.29 and spatial
at most 0.103 (0.062 at 10 frames a second); the highest come from the end of video_02 at 2
frames a second, a hiker's body filling half the frame while the camera pans. Splices of
video_01 and video_02, any frames of each in either order: colour 0.38 or more, and every pair
over one threshold or the other (spatial 0.12 or more where one's end meets the other's
start). video_02's first second against its last (same trail, same palette: colour as low as 0.2):
spatial 0.121 or more, except against its last quarter second, whose view of the trail looks
like the first at this scale (0.104). Hence a cut is colour above 0.4 or spatial above 0.112.
Costs about 3 ms a frame.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from faceledger.types import Pixels

_HUE_BINS = 16
_SAT_BINS = 4
_BLOCKS = 4
"""Blocks a side in the spatial measure."""
_QUANTILE = 0.25
"""The spatial distance is this quantile of the blocks' best-match differences: a quarter of
the frame that reappears (shifted) means the same shot."""

_Grey = npt.NDArray[np.float32]
_Hist = npt.NDArray[np.float64]


class CutDetector:
    """Says whether a sampled frame starts a new shot, comparing it with the previous one.

    ``threshold`` is the colour distance above which frames are a cut, ``spatial_threshold``
    the spatial one; both are in 0..1. ``size`` is the side of the shrunken copy compared.
    """

    def __init__(
        self, threshold: float = 0.4, size: int = 64, spatial_threshold: float = 0.112
    ) -> None:
        if size < 4 * _BLOCKS or size % _BLOCKS:
            raise ValueError(f"size must be a multiple of {_BLOCKS}, at least {4 * _BLOCKS}")
        self.threshold = threshold
        self.spatial_threshold = spatial_threshold
        self.size = size
        self._previous: tuple[_Hist, _Grey] | None = None

    def is_cut(self, pixels: Pixels) -> bool:
        """True when ``pixels`` is not the same shot as the previous call's frame; the first
        call returns False."""
        colour, spatial = self.distances(pixels)
        return colour > self.threshold or spatial > self.spatial_threshold

    def distances(self, pixels: Pixels) -> tuple[float, float]:
        """The colour and spatial distances (each 0..1) of ``pixels`` from the previous call's
        frame, which it then replaces; (0, 0) on the first call."""
        small = Image.fromarray(np.ascontiguousarray(pixels)).resize(
            (self.size, self.size), Image.Resampling.BOX
        )
        current = (_histogram(small), np.asarray(small.convert("L"), dtype=np.float32))
        previous, self._previous = self._previous, current
        if previous is None:
            return 0.0, 0.0
        colour = 0.5 * float(np.abs(current[0] - previous[0]).sum())
        spatial = 0.5 * (_unmatched(previous[1], current[1]) + _unmatched(current[1], previous[1]))
        return colour, spatial

    def reset(self) -> None:
        """Forget the previous frame (the next call returns False)."""
        self._previous = None


def _histogram(small: Image.Image) -> _Hist:
    """Normalised hue x saturation histogram of a small RGB image."""
    hsv = np.asarray(small.convert("HSV"), dtype=np.intp)
    bins = (hsv[..., 0] * _HUE_BINS // 256) * _SAT_BINS + hsv[..., 1] * _SAT_BINS // 256
    counts = np.bincount(bins.ravel(), minlength=_HUE_BINS * _SAT_BINS)
    return np.asarray(counts / counts.sum(), dtype=np.float64)


def _unmatched(source: _Grey, target: _Grey) -> float:
    """How badly ``target``'s blocks are found in ``source``: per block, the least mean
    absolute difference over shifts of up to an eighth of the frame; their lower quartile."""
    side = source.shape[0]
    reach = side // 8
    step = max(1, side // 32)
    padded = np.pad(source, reach, mode="edge")
    shifted = sliding_window_view(padded, (side, side))[::step, ::step]
    block = side // _BLOCKS
    diff = np.abs(shifted - target).reshape(*shifted.shape[:2], _BLOCKS, block, _BLOCKS, block)
    best = diff.mean(axis=(3, 5)).min(axis=(0, 1))
    return float(np.quantile(best, _QUANTILE)) / 255.0
