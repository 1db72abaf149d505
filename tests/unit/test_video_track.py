"""The video face tracker on synthetic boxes: steady, fast, growing and crossing faces keep their
ids; gaps, shot cuts and the end of the video end tracks; ids are never shared or reused; the
assignment is optimal."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceledger.errors import InvalidArgument
from faceledger.types import Box
from faceledger.video.track import Ended, Tracker, TrackerConfig, min_cost_matching

FPS = 3.0


def face(cx: float, cy: float, width: float) -> Box:
    """A face box centred on (cx, cy), a little taller than wide like a detector's."""
    h = 1.1 * width
    return Box(cx - width / 2, cy - h / 2, cx + width / 2, cy + h / 2)


def unit(rng: np.random.Generator, n: int = 64) -> npt.NDArray[np.float32]:
    v = rng.standard_normal(n).astype(np.float32)
    return np.asarray(v / np.linalg.norm(v), dtype=np.float32)


def noisy(base: npt.NDArray[np.float32], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """The same look again, a little different (cosine about 0.9 with ``base``)."""
    v = base + 0.06 * rng.standard_normal(base.size).astype(np.float32)
    return np.asarray(v / np.linalg.norm(v), dtype=np.float32)


def test_fast_steady_face_keeps_one_id() -> None:
    tracker = Tracker()
    width = 60.0
    ids = set()
    for step in range(20):
        box = face(40 + 0.6 * width * step, 200 + 0.2 * width * step, width)
        got, ended = tracker.update(step, step / FPS, [box])
        ids.update(got)
        assert ended == []
    assert ids == {1}
    assert tracker.live[1].hits == 20


def test_face_walking_towards_the_camera_keeps_its_id() -> None:
    tracker = Tracker()
    width, cx, cy = 20.0, 300.0, 150.0
    ids = set()
    for step in range(10):
        got, _ = tracker.update(step, step / FPS, [face(cx, cy, width)])
        ids.update(got)
        width *= 1.3
        cx += 0.2 * width
        cy += 0.15 * width
    assert ids == {1}
    (end,) = tracker.finish()
    assert (end.track_id, end.reason, end.hits) == (1, "end", 10)


def _crossing(steps: int) -> list[tuple[Box, Box]]:
    """Two faces at the same height walking past each other, A left to right, B back."""
    out = []
    for step in range(steps):
        x = 100 + 50 * step
        out.append((face(x, 200, 60), face(100 + 50 * (steps - 1) - 50 * step, 210, 60)))
    return out


def test_crossing_faces_with_descriptors_keep_their_ids() -> None:
    rng = np.random.default_rng(3)
    look_a, look_b = unit(rng), unit(rng)
    tracker = Tracker()
    for step, (a, b) in enumerate(_crossing(11)):
        # input order alternates so that order cannot carry the answer
        if step % 2:
            got, _ = tracker.update(
                step, step / FPS, [b, a], [noisy(look_b, rng), noisy(look_a, rng)]
            )
            got.reverse()
        else:
            got, _ = tracker.update(
                step, step / FPS, [a, b], [noisy(look_a, rng), noisy(look_b, rng)]
            )
        assert got == [1, 2], step


def test_appearance_tells_crossing_faces_apart_where_geometry_cannot() -> None:
    """Two faces meet, stop and part the way they came: motion predicts a swap, looks do not."""
    rng = np.random.default_rng(4)
    look_a, look_b = unit(rng), unit(rng)
    xs_a = [100, 150, 200, 230, 200, 150, 100]
    xs_b = [360, 310, 260, 240, 260, 310, 360]
    looks, blind = Tracker(), Tracker()
    swapped = False
    for step, (xa, xb) in enumerate(zip(xs_a, xs_b, strict=True)):
        boxes = [face(xa, 200, 60), face(xb, 200, 60)]
        got, _ = looks.update(step, step / FPS, boxes, [noisy(look_a, rng), noisy(look_b, rng)])
        assert got == [1, 2], step
        swapped |= blind.update(step, step / FPS, boxes)[0] == [2, 1]
    assert swapped  # the premise: on geometry alone the two trade ids as they turn back


def test_crossing_faces_without_descriptors_are_not_merged() -> None:
    tracker = Tracker()
    seen: set[int] = set()
    for step, (a, b) in enumerate(_crossing(11)):
        got, _ = tracker.update(step, step / FPS, [a, b])
        assert len(set(got)) == 2
        seen.update(got)
    assert len(seen) <= 4  # at worst a swap or a restart at the crossing, never one track
    assert seen == {1, 2}  # in fact steady motion predicts the crossing


def test_face_occluded_at_the_crossing_keeps_its_id_with_descriptors() -> None:
    """At the crossing only the front face is detected; appearance says whose it is."""
    rng = np.random.default_rng(5)
    look_a, look_b = unit(rng), unit(rng)
    tracker = Tracker()
    for step, (a, b) in enumerate(_crossing(11)):
        if step == 5:  # both at x = 350; only B is seen
            got, _ = tracker.update(step, step / FPS, [b], [noisy(look_b, rng)])
            assert got == [2]
            continue
        got, _ = tracker.update(step, step / FPS, [a, b], [noisy(look_a, rng), noisy(look_b, rng)])
        assert got == [1, 2], step


def test_a_missed_frame_keeps_the_id() -> None:
    tracker = Tracker()
    for step in range(8):
        boxes = [] if step in (3, 4) else [face(100 + 30 * step, 100, 50)]
        got, ended = tracker.update(step, step / FPS, boxes)
        assert ended == []
        assert got == ([1] if boxes else [])


def test_a_long_gap_ends_the_track_and_the_face_comes_back_new() -> None:
    tracker = Tracker(TrackerConfig(max_gap_s=1.0))
    tracker.update(0, 0.0, [face(100, 100, 50)])
    tracker.update(1, 1 / FPS, [face(110, 100, 50)])
    ended: list[Ended] = []
    step = 2
    while not ended:  # nothing seen: the track ends once it is more than 1 s old
        _, ended = tracker.update(step, step / FPS, [])
        step += 1
    (end,) = ended
    assert (end.track_id, end.reason, end.hits) == (1, "gap", 2)
    assert (end.first_frame, end.last_frame) == (0, 1)
    assert end.last_time_s == pytest.approx(1 / FPS)
    assert (step - 1) / FPS - end.last_time_s > 1.0 >= (step - 2) / FPS - end.last_time_s
    got, ended = tracker.update(step, step / FPS, [face(110, 100, 50)])
    assert got == [2] and ended == []


def test_reappearance_after_a_long_gap_is_new_even_without_an_empty_update() -> None:
    tracker = Tracker()
    tracker.update(0, 0.0, [face(100, 100, 50)])
    got, ended = tracker.update(1, 1.5, [face(100, 100, 50)])
    assert got == [2]
    assert [(e.track_id, e.reason) for e in ended] == [(1, "gap")]


def test_cut_ends_everything_and_the_same_place_gets_a_new_id() -> None:
    tracker = Tracker()
    tracker.update(0, 0.0, [face(100, 100, 50), face(300, 100, 50)])
    tracker.update(1, 1 / FPS, [face(100, 100, 50), face(300, 100, 50)])
    ended = tracker.cut()
    assert [(e.track_id, e.reason, e.hits) for e in ended] == [(1, "cut", 2), (2, "cut", 2)]
    assert tracker.live == {}
    got, ended = tracker.update(2, 2 / FPS, [face(100, 100, 50)])
    assert got == [3] and ended == []
    assert [(e.track_id, e.reason) for e in tracker.finish()] == [(3, "end")]
    assert tracker.finish() == []


def test_new_faces_get_new_ids_and_ids_are_never_reused() -> None:
    tracker = Tracker()
    assert tracker.update(0, 0.0, [face(100, 100, 50)])[0] == [1]
    assert tracker.update(1, 0.33, [face(102, 100, 50), face(400, 300, 50)])[0] == [1, 2]
    got, _ = tracker.update(2, 0.67, [face(400, 300, 50), face(104, 100, 50), face(250, 50, 40)])
    assert got == [2, 1, 3]
    tracker.cut()
    got, _ = tracker.update(3, 1.0, [face(104, 100, 50), face(400, 300, 50)])
    assert got == [4, 5]


def test_boxes_far_apart_or_of_another_size_or_look_start_new_tracks() -> None:
    rng = np.random.default_rng(6)
    look = unit(rng)
    tracker = Tracker()
    tracker.update(0, 0.0, [face(100, 100, 50)], [look])
    assert tracker.update(1, 0.33, [face(300, 100, 50)], [look])[0] == [2]  # 4 widths away
    tracker = Tracker()
    tracker.update(0, 0.0, [face(100, 100, 50)])
    assert tracker.update(1, 0.33, [face(100, 100, 100)])[0] == [2]  # twice the width
    tracker = Tracker()
    tracker.update(0, 0.0, [face(100, 100, 50)], [look])
    assert tracker.update(1, 0.33, [face(100, 100, 50)], [unit(rng)])[0] == [2]  # another look


def test_a_zero_descriptor_counts_as_missing() -> None:
    tracker = Tracker()
    tracker.update(0, 0.0, [face(100, 100, 50)], [np.zeros(8, dtype=np.float32)])
    got, _ = tracker.update(1, 0.33, [face(105, 100, 50)], [unit(np.random.default_rng(1), 8)])
    assert got == [1]
    assert tracker.live[1].descriptor is not None


def test_live_state_follows_the_track() -> None:
    tracker = Tracker()
    for step in range(4):
        tracker.update(10 + step, step * 0.25, [face(100 + 20 * step, 100, 50 + 2 * step)])
    state = tracker.live[1]
    assert (state.first_frame, state.last_frame, state.hits) == (10, 13, 4)
    assert (state.first_time_s, state.last_time_s) == (0.0, 0.75)
    vx, vy, vw = state.velocity
    assert vx == pytest.approx(80.0) and vy == pytest.approx(0.0) and vw == pytest.approx(8.0)
    with pytest.raises(TypeError):
        tracker.live[99] = state  # type: ignore[index]


def test_bad_calls_are_refused() -> None:
    tracker = Tracker()
    tracker.update(0, 1.0, [])
    with pytest.raises(InvalidArgument):
        tracker.update(1, 0.5, [])
    with pytest.raises(InvalidArgument):
        tracker.update(1, 1.5, [face(1, 1, 5)], [])


def _brute_force(
    cost: npt.NDArray[np.float64], allowed: npt.NDArray[np.bool_]
) -> tuple[int, float]:
    """The most pairs, then the least cost, over every way of giving rows distinct columns."""
    rows, cols = cost.shape
    best = (0, 0.0)
    for chosen in itertools.product(range(-1, cols), repeat=rows):
        used = [c for c in chosen if c >= 0]
        if len(used) != len(set(used)) or any(
            c >= 0 and not allowed[r, c] for r, c in enumerate(chosen)
        ):
            continue
        total = sum(cost[r, c] for r, c in enumerate(chosen) if c >= 0)
        if len(used) > best[0] or (len(used) == best[0] and total < best[1] - 1e-12):
            best = (len(used), total)
    return best


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 4),
    st.integers(0, 5),
    st.integers(0, 2**32 - 1),
    st.floats(0.0, 1.0),
)
def test_matching_is_optimal(rows: int, cols: int, seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    cost = rng.random((rows, cols))
    allowed = rng.random((rows, cols)) < density
    pairs = min_cost_matching(cost, allowed)
    assert len({r for r, _ in pairs}) == len(pairs) == len({c for _, c in pairs})
    assert all(allowed[r, c] for r, c in pairs)
    count, total = _brute_force(cost, allowed)
    assert len(pairs) == count
    assert sum(cost[r, c] for r, c in pairs) == pytest.approx(total)


_box = st.builds(
    lambda x, y, w: face(x, y, w),
    st.floats(0, 640),
    st.floats(0, 480),
    st.floats(10, 150),
)
_step = st.tuples(
    st.floats(0.05, 1.5),  # time to the next sampled frame
    st.lists(_box, max_size=6),
    st.booleans(),  # a shot cut before this frame
    st.booleans(),  # with descriptors
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_step, max_size=25), st.integers(0, 2**32 - 1))
def test_invariants_over_random_box_sequences(
    steps: list[tuple[float, list[Box], bool, bool]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    looks = [unit(rng, 8) for _ in range(3)]
    tracker = Tracker()
    issued: list[int] = []
    ended_ids: set[int] = set()
    hits: dict[int, int] = {}
    time_s = 0.0
    for frame, (dt, boxes, cut, with_desc) in enumerate(steps):
        time_s += dt
        cut_ended = tracker.cut() if cut else []
        assert all(e.reason == "cut" for e in cut_ended)
        descs = [noisy(looks[i % 3], rng) for i in range(len(boxes))] if with_desc else None
        ids, gap_ended = tracker.update(frame, time_s, boxes, descs)
        assert all(e.reason == "gap" and time_s - e.last_time_s > 1.0 for e in gap_ended)
        assert len(ids) == len(boxes)
        assert len(set(ids)) == len(ids)  # no two boxes share an id
        for e in cut_ended + gap_ended:
            assert e.track_id in issued and e.track_id not in ended_ids
            assert e.hits == hits[e.track_id]
            ended_ids.add(e.track_id)
        assert not ended_ids & set(ids)  # ended tracks never return
        new = [i for i in ids if i not in issued]
        assert new == list(range(len(issued) + 1, len(issued) + 1 + len(new)))
        issued += new
        for i in ids:
            hits[i] = hits.get(i, 0) + 1
        assert set(tracker.live) == set(issued) - ended_ids
    final = tracker.finish()
    assert {e.track_id for e in final} == set(issued) - ended_ids
    assert all(e.reason == "end" and e.hits == hits[e.track_id] for e in final)
