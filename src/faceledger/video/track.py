"""Link face detections on sampled video frames into tracks, one per appearance of a person.

Our own small tracker rather than a tracking package (ByteTrack, norfair, motpy): detections
arrive at a few sampled frames a second, at irregular times, with about 1 to 10 faces a frame.
At that size a gated, optimal assignment between predicted tracks and boxes is about a hundred
lines, needs no dependency, and its rules (time gaps, shot cuts, appearance) are ours to state.

Each track predicts its box at the new frame's time from a smoothed, damped constant velocity of
its centre and width. A (track, box) pair is allowed when the boxes overlap or their centres are
close, their widths are alike and, when descriptors are given, they look alike; among the allowed
pairs the assignment matches as many boxes as possible at the least total cost (the Hungarian
method). A track unseen for longer than ``max_gap_s`` ends; a shot cut ends every track.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from faceledger.errors import InvalidArgument
from faceledger.types import Box

_VELOCITY_TAU_S = 1.0
"""Predicted motion decays with this time constant: a gap of dt seconds moves a track by
``velocity * tau * (1 - exp(-dt / tau))``, near ``velocity * dt`` for one sampled step and no
more than ``velocity * tau`` however long the gap (people stop, turn, walk away)."""

_VELOCITY_SMOOTHING = 0.6
"""Weight of the newest step's velocity in the exponential smoothing."""

_DESCRIPTOR_MEMORY = 4
"""The running mean of a track's descriptors weighs the newest one at least 1/4, so it follows
slow changes of pose and lighting."""

_FORBIDDEN = 1e6
"""Cost of a gated-out pair in the assignment: more than any set of allowed pairs can cost."""


@dataclass(frozen=True)
class TrackerConfig:
    """Gates and weights of the association; the defaults suit 3 to 8 sampled frames a second."""

    max_gap_s: float = 1.0
    """A track unseen for longer than this ends (reason ``"gap"``)."""
    min_iou: float = 0.1
    """A pair is close enough when the predicted box and the box overlap this much ..."""
    max_centre_jump: float = 1.5
    """... or their centres are within this many (predicted) face widths."""
    max_scale_change: float = 1.8
    """Largest ratio between the widths of a track's last box and a box it takes."""
    min_appearance: float = 0.5
    """Least cosine between a track's and a box's descriptors, when both are known."""
    appearance_weight: float = 0.5
    """Weight of ``1 - cosine`` against the geometric cost, when both descriptors are known."""
    min_hits: int = 1
    """Tracks with fewer detections are noise to the caller; the tracker reports them alike."""


@dataclass
class TrackState:
    """The tracker's view of one live track."""

    track_id: int
    first_time_s: float
    last_time_s: float
    first_frame: int
    last_frame: int
    hits: int
    """Detections assigned so far."""
    box: Box
    """The last box assigned."""
    velocity: tuple[float, float, float]
    """Smoothed d(centre x)/dt, d(centre y)/dt and d(width)/dt in pixels a second."""
    descriptor: npt.NDArray[np.float32] | None
    """Running mean of the appearance descriptors assigned (L2-normalised), if any."""

    def predict(self, time_s: float) -> Box:
        """The box expected at ``time_s``: constant, damped velocity from the last box."""
        dt = max(0.0, time_s - self.last_time_s)
        reach = _VELOCITY_TAU_S * (1.0 - math.exp(-dt / _VELOCITY_TAU_S))
        vx, vy, vw = self.velocity
        centre = self.box.center
        cx, cy = centre.x + vx * reach, centre.y + vy * reach
        width = max(0.5 * self.box.width, self.box.width + vw * reach)
        height = width * (self.box.height / self.box.width) if self.box.width > 0 else width
        return Box(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


@dataclass(frozen=True)
class Ended:
    """A track that ended: why, and the span it covered."""

    track_id: int
    reason: str
    """``"gap"`` (unseen too long), ``"cut"`` (shot cut) or ``"end"`` (end of the video)."""
    hits: int
    first_time_s: float
    last_time_s: float
    first_frame: int
    last_frame: int


class Tracker:
    """Assigns every detection of a sampled frame to a new or continued track.

    Feed frames in time order with :meth:`update`; call :meth:`cut` at a shot cut and
    :meth:`finish` at the end. Track ids count up from 1 and are never reused.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: dict[int, TrackState] = {}
        self._next_id = 1
        self._last_time_s = -math.inf

    @property
    def live(self) -> Mapping[int, TrackState]:
        """The live tracks by id (a read-only view)."""
        return MappingProxyType(self._tracks)

    def update(
        self,
        frame_index: int,
        time_s: float,
        boxes: Sequence[Box],
        descriptors: Sequence[npt.NDArray[np.float32]] | None = None,
    ) -> tuple[list[int], list[Ended]]:
        """Assign each box a track id (new or continued), in input order; returns the ids and the
        tracks that ended at this step (unseen for longer than max_gap_s)."""
        if time_s < self._last_time_s:
            raise InvalidArgument(f"frame time {time_s} s is before the last one's")
        if descriptors is not None and len(descriptors) != len(boxes):
            raise InvalidArgument(f"{len(descriptors)} descriptors for {len(boxes)} boxes")
        self._last_time_s = time_s
        stale = [t for t in self._tracks.values() if time_s - t.last_time_s > self.config.max_gap_s]
        ended = self._end(stale, "gap")
        given = descriptors if descriptors is not None else [None] * len(boxes)
        descs = [_usable(d) for d in given]
        tracks = list(self._tracks.values())
        cost, allowed = self._costs(tracks, time_s, boxes, descs)
        ids: list[int] = [0] * len(boxes)
        for row, col in min_cost_matching(cost, allowed):
            track = tracks[row]
            _advance(track, frame_index, time_s, boxes[col], descs[col])
            ids[col] = track.track_id
        for col, box in enumerate(boxes):
            if ids[col] == 0:
                ids[col] = self._start(frame_index, time_s, box, descs[col])
        return ids, ended

    def cut(self) -> list[Ended]:
        """A shot cut: end every live track, so that nothing continues across it."""
        return self._end(list(self._tracks.values()), "cut")

    def finish(self) -> list[Ended]:
        """The end of the video: end every live track."""
        return self._end(list(self._tracks.values()), "end")

    def _end(self, tracks: list[TrackState], reason: str) -> list[Ended]:
        out = []
        for t in sorted(tracks, key=lambda t: t.track_id):
            del self._tracks[t.track_id]
            out.append(
                Ended(
                    t.track_id,
                    reason,
                    t.hits,
                    t.first_time_s,
                    t.last_time_s,
                    t.first_frame,
                    t.last_frame,
                )
            )
        return out

    def _start(
        self, frame_index: int, time_s: float, box: Box, desc: npt.NDArray[np.float32] | None
    ) -> int:
        track_id = self._next_id
        self._next_id += 1
        self._tracks[track_id] = TrackState(
            track_id, time_s, time_s, frame_index, frame_index, 1, box, (0.0, 0.0, 0.0), desc
        )
        return track_id

    def _costs(
        self,
        tracks: list[TrackState],
        time_s: float,
        boxes: Sequence[Box],
        descs: list[npt.NDArray[np.float32] | None],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The association cost of every (track, box) pair, and which pairs pass the gates."""
        cost = np.full((len(tracks), len(boxes)), _FORBIDDEN)
        allowed = np.zeros((len(tracks), len(boxes)), dtype=bool)
        for row, track in enumerate(tracks):
            predicted = track.predict(time_s)
            for col, box in enumerate(boxes):
                pair = self._pair_cost(track, predicted, box, descs[col])
                if pair is not None:
                    cost[row, col] = pair
                    allowed[row, col] = True
        return cost, allowed

    def _pair_cost(
        self,
        track: TrackState,
        predicted: Box,
        box: Box,
        desc: npt.NDArray[np.float32] | None,
    ) -> float | None:
        """Cost in 0..1 of giving ``box`` to ``track``, or None when a gate forbids it."""
        cfg = self.config
        iou = predicted.iou(box)
        reach = cfg.max_centre_jump * max(predicted.width, 1.0)
        a, b = predicted.center, box.center
        closeness = max(0.0, 1.0 - math.hypot(a.x - b.x, a.y - b.y) / reach)
        if iou < cfg.min_iou and closeness <= 0.0:
            return None
        small, large = sorted((track.box.width, box.width))
        if small <= 0 or large / small > cfg.max_scale_change:
            return None
        p_small, p_large = sorted((predicted.width, box.width))
        scale = p_small / p_large if p_large > 0 else 0.0
        geometric = 1.0 - (iou + closeness + scale) / 3.0
        if track.descriptor is None or desc is None:
            return geometric
        cosine = float(track.descriptor @ desc)
        if cosine < cfg.min_appearance:
            return None
        w = cfg.appearance_weight
        return (1.0 - w) * geometric + w * (1.0 - cosine)


def _usable(desc: npt.NDArray[np.float32] | None) -> npt.NDArray[np.float32] | None:
    """The descriptor as a unit float32 vector, or None for a zero one (nothing to compare)."""
    if desc is None:
        return None
    vec = np.asarray(desc, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 and math.isfinite(norm) else None


def _advance(
    track: TrackState,
    frame_index: int,
    time_s: float,
    box: Box,
    desc: npt.NDArray[np.float32] | None,
) -> None:
    """Give ``box`` to ``track``: update its velocity, descriptor and span."""
    dt = time_s - track.last_time_s
    if dt > 0:
        old, new = track.box.center, box.center
        step = (
            (new.x - old.x) / dt,
            (new.y - old.y) / dt,
            (box.width - track.box.width) / dt,
        )
        a = 1.0 if track.hits == 1 else _VELOCITY_SMOOTHING
        v = track.velocity
        track.velocity = (
            a * step[0] + (1 - a) * v[0],
            a * step[1] + (1 - a) * v[1],
            a * step[2] + (1 - a) * v[2],
        )
    if desc is not None:
        if track.descriptor is None:
            track.descriptor = desc
        else:
            weight = max(1.0 / (track.hits + 1), 1.0 / _DESCRIPTOR_MEMORY)
            track.descriptor = _usable((1 - weight) * track.descriptor + weight * desc)
    track.box = box
    track.hits += 1
    track.last_time_s = time_s
    track.last_frame = frame_index


def min_cost_matching(
    cost: npt.NDArray[np.float64], allowed: npt.NDArray[np.bool_]
) -> list[tuple[int, int]]:
    """The (row, column) pairs of an optimal assignment among the allowed pairs.

    Matches as many rows to columns as the allowed pairs permit and, among those matchings,
    one of least total cost; every row and column is used at most once. The Hungarian method
    with potentials, O(n^2 m) for n <= m: exact, and instant for the handful of faces a frame
    has (a greedy pass can give a face's obvious box to a neighbour that merely fits it better).
    """
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return []
    if rows > cols:
        return sorted((r, c) for c, r in min_cost_matching(cost.T, allowed.T))
    masked = np.where(allowed, cost, _FORBIDDEN)
    match = _hungarian(masked)
    return [(r, c) for r, c in enumerate(match) if allowed[r, c]]


def _hungarian(cost: npt.NDArray[np.float64]) -> list[int]:
    """For an n x m cost matrix with n <= m, the column given to each row in a least-cost
    assignment of every row (shortest augmenting paths with row and column potentials)."""
    n, m = cost.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.intp)  # owner[j]: 1-based row holding column j; 0: free
    for row in range(1, n + 1):
        owner[0] = row
        j0 = 0
        minv = np.full(m + 1, np.inf)
        way = np.zeros(m + 1, dtype=np.intp)
        used = np.zeros(m + 1, dtype=bool)
        while owner[j0] != 0:
            used[j0] = True
            i0 = owner[j0]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = ~used[1:] & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            free = np.flatnonzero(~used[1:]) + 1
            j1 = int(free[np.argmin(minv[free])])
            delta = minv[j1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
        while j0 != 0:
            j1 = int(way[j0])
            owner[j0] = owner[j1]
            j0 = j1
    match = [0] * n
    for j in range(1, m + 1):
        if owner[j] != 0:
            match[owner[j] - 1] = j - 1
    return match
