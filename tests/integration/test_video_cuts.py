"""Shot-cut detection and the appearance descriptor on real video: no cut is flagged anywhere in
video_01 or video_02 (a pan, people walking up to the camera) at 2, 5 and 10 sampled frames a
second; splices of video_01 onto video_02 and of video_02's first second onto its last (same
trail, same palette) are flagged at the splice and nowhere else; the descriptor finds the same
face in the next sampled frame more alike than another person's."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest

from faceledger.config import Settings
from faceledger.detect import make_detector
from faceledger.types import Box, Pixels
from faceledger.video.appearance import descriptor
from faceledger.video.cuts import CutDetector

RATES = (2.0, 5.0, 10.0)


@pytest.fixture(scope="module")
def videos(data_dir: Path) -> Path:
    return data_dir / "video"


def _frames(path: Path) -> Iterator[tuple[float, Pixels]]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            pixels = np.ascontiguousarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            yield float(frame.time or 0.0), pixels


def _duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.duration is not None and stream.time_base is not None
        return float(stream.duration * stream.time_base)


class _Sampler:
    """Keeps the first frame at or after each multiple of 1/rate seconds."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.next_s = 0.0

    def take(self, time_s: float) -> bool:
        if time_s + 1e-6 < self.next_s:
            return False
        while self.next_s <= time_s + 1e-6:
            self.next_s += 1 / self.rate
        return True


@dataclass
class _Run:
    """One CutDetector over a sequence of sampled frames: its verdicts and distances."""

    detector: CutDetector = field(default_factory=CutDetector)
    cuts: list[bool] = field(default_factory=list)
    distances: list[tuple[float, float]] = field(default_factory=list)

    def feed(self, pixels: Pixels) -> None:
        first = not self.cuts
        colour, spatial = self.detector.distances(pixels)
        d = self.detector
        self.cuts.append(not first and (colour > d.threshold or spatial > d.spatial_threshold))
        self.distances.append((colour, spatial))


@dataclass
class _Runs:
    whole: dict[tuple[str, float], _Run]
    spliced: dict[tuple[str, float], _Run]
    splice_at: dict[tuple[str, float], int]


@pytest.fixture(scope="module")
def runs(videos: Path) -> _Runs:
    """Every run, from one decoding pass over each video (frames are not kept)."""
    whole = {(v, r): _Run() for v in ("video_01", "video_02") for r in RATES}
    spliced = {(s, r): _Run() for s in ("01>02", "02 ends") for r in RATES}
    splice_at: dict[tuple[str, float], int] = {}
    end_s = _duration(videos / "video_02.mp4")
    for name in ("video_01", "video_02"):
        samplers = {r: _Sampler(r) for r in RATES}
        for time_s, pixels in _frames(videos / f"{name}.mp4"):
            for rate, sampler in samplers.items():
                if not sampler.take(time_s):
                    continue
                whole[(name, rate)].feed(pixels)
                if name == "video_02":
                    splice_at.setdefault(("01>02", rate), len(spliced[("01>02", rate)].cuts))
                spliced[("01>02", rate)].feed(pixels)
                if name == "video_02" and (time_s < 1.0 or time_s >= end_s - 1.0):
                    run = spliced[("02 ends", rate)]
                    if time_s >= end_s - 1.0:
                        splice_at.setdefault(("02 ends", rate), len(run.cuts))
                    run.feed(pixels)
    return _Runs(whole, spliced, splice_at)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("name", ["video_01", "video_02"])
def test_no_cut_in_continuous_video(runs: _Runs, name: str, rate: float) -> None:
    run = runs.whole[(name, rate)]
    assert len(run.cuts) >= 3 * rate - 1
    flagged = [i for i, cut in enumerate(run.cuts) if cut]
    assert flagged == [], (flagged, [run.distances[i] for i in flagged])


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("splice", ["01>02", "02 ends"])
def test_splices_are_flagged_there_and_only_there(runs: _Runs, splice: str, rate: float) -> None:
    run = runs.spliced[(splice, rate)]
    at = runs.splice_at[(splice, rate)]
    assert 0 < at < len(run.cuts) - 1
    assert [i for i, cut in enumerate(run.cuts) if cut] == [at], run.distances


def test_margins_between_cuts_and_continuous_video(runs: _Runs) -> None:
    """Spatial distance: the largest over continuous video stays below the threshold, the
    smallest at a splice above it, each with some room."""
    threshold = CutDetector().spatial_threshold
    within = max(d[1] for run in runs.whole.values() for d in run.distances)
    splices = min(runs.spliced[key].distances[at][1] for key, at in runs.splice_at.items())
    assert within < 0.95 * threshold < threshold < 1.05 * threshold < splices, (within, splices)
    colour = max(d[0] for run in runs.whole.values() for d in run.distances)
    assert colour < 0.8 * CutDetector().threshold
    print(
        f"spatial: continuous max {within:.3f}, splice min {splices:.3f}; colour max {colour:.3f}"
    )


def test_first_call_is_never_a_cut() -> None:
    detector = CutDetector()
    black = np.zeros((48, 64, 3), dtype=np.uint8)
    assert not detector.is_cut(black)
    assert not detector.is_cut(black)
    assert detector.is_cut(np.full((48, 64, 3), 255, dtype=np.uint8))
    detector.reset()
    assert not detector.is_cut(black)


@pytest.fixture(scope="module")
def faces(videos: Path) -> list[tuple[Pixels, list[Box]]]:
    """Frames 0, 10 and 20 of video_01 (3 sampled frames a second) with their faces."""
    detector = make_detector(Settings(detector="hog"))
    out = []
    for index, (_, pixels) in enumerate(_frames(videos / "video_01.mp4")):
        if index in (0, 10, 20):
            out.append((pixels, [d.box for d in detector.detect(pixels)]))
        if index >= 20:
            break
    return out


def _near(a: Box, b: Box) -> bool:
    return abs(a.center.x - b.center.x) + abs(a.center.y - b.center.y) < a.width


def test_descriptor_finds_the_same_face_more_alike_than_another(
    faces: list[tuple[Pixels, list[Box]]],
) -> None:
    same: list[float] = []
    other: list[float] = []
    for (pix_a, boxes_a), (pix_b, boxes_b) in itertools.pairwise(faces):
        assert len(boxes_a) >= 2 and len(boxes_b) >= 2
        for a in boxes_a:
            da = descriptor(pix_a, a)
            for b in boxes_b:
                cos = float(da @ descriptor(pix_b, b))
                (same if _near(a, b) else other).append(cos)
        for i, a in enumerate(boxes_a):  # different people in one frame
            for b in boxes_a[i + 1 :]:
                other.append(float(descriptor(pix_a, a) @ descriptor(pix_a, b)))
    assert len(same) >= 4 and len(other) >= 4
    assert min(same) > max(other), (same, other)
    assert min(same) > 0.6 and max(other) < 0.6  # on either side of the tracker's gate (0.5+)


def test_descriptor_shape_norm_and_cost(faces: list[tuple[Pixels, list[Box]]]) -> None:
    pixels, boxes = faces[0]
    vec = descriptor(pixels, boxes[0])
    assert vec.dtype == np.float32 and vec.shape == (16 * 16 + 128,)
    assert float(np.linalg.norm(vec)) == pytest.approx(1.0, abs=1e-5)
    outside = Box(700, 500, 800, 600)  # and so is the band below it
    assert not descriptor(pixels, outside).any()
    edge = Box(600, 440, 700, 540)  # partly outside, no band below
    assert float(np.linalg.norm(descriptor(pixels, edge))) == pytest.approx(1.0, abs=1e-5)
    times = []
    for _ in range(50):
        start = time.perf_counter()
        descriptor(pixels, boxes[0])
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 1e-3
