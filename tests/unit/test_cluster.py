"""Clustering on synthetic templates: cannot-link, ambiguity, seeds, the threshold from FMR,
and the clustering scores."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from faceledger.cluster import METHODS, Source, cluster_faces, margin_at_fmr, threshold_at_fmr
from faceledger.cluster.algorithms import dbscan, dlib_whispers_euclidean
from faceledger.config import Settings
from faceledger.errors import CalibrationError, InvalidArgument
from faceledger.evaluate.clustering import score
from faceledger.models import ModelRegistry
from faceledger.models.calibration import CalibrationTable

DIM = 128


def _unit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _people(n_ids: int, per_id: int, spread: float, seed: int = 0) -> npt.NDArray[np.float32]:
    """``per_id`` faces of each of ``n_ids`` random people, each face its centre plus noise."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(n_ids, DIM)))
    faces = centres[:, None, :] + spread * rng.normal(size=(n_ids, per_id, DIM)) / np.sqrt(DIM)
    return _unit(faces.reshape(n_ids * per_id, DIM))


def _sources(n: int) -> list[str]:
    return [f"img{i}" for i in range(n)]


@pytest.mark.parametrize("method", METHODS)
def test_separate_people_are_found(method: str) -> None:
    x = _people(6, 5, 0.3)
    res = cluster_faces(x, _sources(len(x)), threshold=0.8, method=method)
    truth = [i // 5 for i in range(len(x))]
    assert score(res.labels, [str(t) for t in truth]).bcubed_f1 == pytest.approx(1.0)
    assert res.n_clusters == 6
    assert not res.ambiguous


@pytest.mark.parametrize("method", METHODS)
def test_two_faces_of_one_image_never_share_a_cluster(method: str) -> None:
    """Twins in one photo: nearly identical templates, one source: two clusters."""
    x = _people(1, 6, 0.2)
    sources = ["group.jpg", "group.jpg", "a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    res = cluster_faces(x, sources, threshold=0.5, method=method)
    assert res.labels[0] != res.labels[1]
    for c in range(res.n_clusters):
        members = [sources[i] for i in np.flatnonzero(res.labels == c)]
        assert len(members) == len(set(members)), members


def test_a_face_between_two_people_is_ambiguous() -> None:
    rng = np.random.default_rng(3)
    a, b = _unit(rng.normal(size=(2, DIM)))
    between = _unit((a + b)[None, :])[0]
    near_a = _unit(a + 0.05 * rng.normal(size=(3, DIM)) / np.sqrt(DIM))
    near_b = _unit(b + 0.05 * rng.normal(size=(3, DIM)) / np.sqrt(DIM))
    x = np.vstack([near_a, near_b, between[None, :]])
    threshold = float(between @ a) - 0.02  # the middle face links to both people
    res = cluster_faces(x, _sources(7), threshold=threshold, margin=0.05, method="average")
    assert 6 in res.ambiguous
    assert res.runner_up[6] >= 0
    assert not set(res.ambiguous) & set(range(6))
    clear = cluster_faces(x, _sources(7), threshold=threshold, margin=0.0, method="average")
    assert not clear.ambiguous  # no margin: nothing is a close call


@pytest.mark.parametrize("method", METHODS)
def test_faces_failing_the_gates_never_seed(method: str) -> None:
    x = _people(3, 4, 0.3)
    seedable = [True] * 12
    for i in (8, 9, 10, 11):  # the third person: only low-quality faces
        seedable[i] = False
    seedable[0] = False  # a low-quality face of the first person: joins its cluster
    res = cluster_faces(x, _sources(12), threshold=0.8, seedable=seedable, method=method)
    assert list(res.labels[8:]) == [-1, -1, -1, -1]
    assert res.unassigned == (8, 9, 10, 11)
    assert res.labels[0] == res.labels[1] >= 0
    assert res.n_clusters == 2


def test_a_joining_face_respects_cannot_link() -> None:
    x = _people(1, 4, 0.2)
    sources = ["a.jpg", "b.jpg", "b.jpg", "c.jpg"]
    res = cluster_faces(x, sources, threshold=0.5, seedable=[True, True, False, True])
    assert res.labels[2] == -1  # its image already has a face in the only cluster


def _frames(video: str, start: int, end: int) -> frozenset[str]:
    return frozenset(f"{video}#{k}" for k in range(start, end + 1))


@pytest.mark.parametrize("method", METHODS)
def test_tracks_on_screen_together_never_share_a_cluster(method: str) -> None:
    """One person's four tracks: two overlap in time (twins on screen together), two are
    apart (the person left and came back); an image of the person has its own source."""
    x = _people(1, 5, 0.2)
    sources: list[Source] = [
        _frames("v", 0, 10),
        _frames("v", 8, 20),  # overlaps the first: another person
        _frames("v", 30, 40),  # apart from both
        _frames("w", 0, 10),  # another video
        "still.jpg",
    ]
    seedable = [True, True, True, True, False]
    res = cluster_faces(x, sources, threshold=0.5, seedable=seedable, method=method)
    assert res.labels[0] != res.labels[1]
    assert res.labels[2] >= 0 and res.labels[3] >= 0 and res.labels[4] >= 0
    for c in range(res.n_clusters):
        members = [sources[i] for i in np.flatnonzero(res.labels == c)]
        seen: set[str] = set()
        for m in members:
            tokens = {m} if isinstance(m, str) else set(m)
            assert not tokens & seen, members
            seen |= tokens
    assert res.n_clusters == 2  # the overlapping pair split; everything else joins one


def test_a_track_mean_template_scores_the_mean_of_its_faces_pairs() -> None:
    """A track is clustered by the mean of its faces' unit templates (not re-normalised):
    its similarity to another track's mean is the mean similarity of their faces' pairs,
    lower than the cosine of the normalised means, which would link two people too soon."""
    rng = np.random.default_rng(5)
    face_like = rng.normal(size=DIM)  # what every face shares: impostors score well above 0
    centres = [_unit(face_like + 0.5 * rng.normal(size=DIM)) for _ in range(2)]
    a, b = (_unit(c + 0.6 * rng.normal(size=(4, DIM)) / np.sqrt(DIM)) for c in centres)
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    pairs = float((a @ b.T).mean())
    assert float(mean_a @ mean_b) == pytest.approx(pairs, abs=1e-5)
    cosine = float(_unit(mean_a) @ _unit(mean_b))
    assert cosine > pairs
    between = (pairs + cosine) / 2
    x = np.vstack([mean_a, mean_b]).astype(np.float32)
    apart = cluster_faces(x, ["t1", "t2"], threshold=between)
    assert apart.n_clusters == 2  # the mean of the pairs' scores stays below the threshold
    joined = cluster_faces(_unit(x.astype(np.float64)), ["t1", "t2"], threshold=between)
    assert joined.n_clusters == 1  # normalised means would have linked them


def test_threshold_follows_the_target_fmr() -> None:
    card = ModelRegistry(Settings().model_dir).get(Settings().model_id)
    assert card.calibration is not None
    ts = [threshold_at_fmr(card, f) for f in (1e-2, 1e-3, 1e-4)]
    assert ts == sorted(ts) and ts[0] < ts[-1]
    assert ts[2] == pytest.approx(card.calibration.threshold_for(1e-4))
    assert margin_at_fmr(card, 1e-4) == pytest.approx(ts[2] - ts[1])
    # a made-up calibration moves the threshold with it: never a constant
    rng = np.random.default_rng(0)
    table = CalibrationTable.from_scores(rng.normal(0.2, 0.1, size=200_000))
    other = replace(card, calibration=table)
    assert threshold_at_fmr(other, 1e-4) == pytest.approx(table.threshold_for(1e-4))
    assert threshold_at_fmr(other, 1e-4) != pytest.approx(ts[2])
    with pytest.raises(CalibrationError):
        threshold_at_fmr(replace(card, calibration=None), 1e-4)
    with pytest.raises(InvalidArgument):
        threshold_at_fmr(card, 1.5)


def test_a_looser_fmr_merges_more() -> None:
    card = ModelRegistry(Settings().model_dir).get(Settings().model_id)
    x = _people(8, 4, 0.9, seed=5)
    counts = [
        cluster_faces(x, _sources(32), threshold=threshold_at_fmr(card, f)).n_clusters
        for f in (1e-1, 1e-5)
    ]
    assert counts[0] <= counts[1]


def test_scores_of_known_clusterings() -> None:
    truth = ["a", "a", "b", "b"]
    perfect = score([0, 0, 1, 1], truth)
    assert (perfect.pairwise_f1, perfect.bcubed_f1, perfect.clusters) == (1.0, 1.0, 2)
    lumped = score([0, 0, 0, 0], truth)
    assert lumped.bcubed_recall == 1.0 and lumped.bcubed_precision == 0.5
    assert lumped.pairwise_precision == pytest.approx(2 / 6)
    apart = score([-1, -1, -1, -1], truth)  # unclustered faces count as singletons
    assert apart.bcubed_precision == 1.0 and apart.bcubed_recall == 0.5
    assert apart.pairwise_recall == 0.0 and apart.clusters == 4


def test_reference_settings() -> None:
    x = _people(3, 4, 0.2)
    truth = [str(i // 4) for i in range(12)]
    assert score(dlib_whispers_euclidean(x, 0.5), truth).bcubed_f1 == pytest.approx(1.0)
    assert score(dbscan(x, 0.5, 1), truth).bcubed_f1 == pytest.approx(1.0)
    assert set(dbscan(x[:2], 0.5, 3).tolist()) == {-1}  # too few neighbours: noise


def test_bad_inputs_are_refused() -> None:
    x = _people(1, 2, 0.1)
    with pytest.raises(InvalidArgument):
        cluster_faces(x, ["a"], threshold=0.5)
    with pytest.raises(InvalidArgument):
        cluster_faces(x, ["a", "b"], threshold=0.5, method="kmeans")
    empty = cluster_faces(np.zeros((0, DIM), np.float32), [], threshold=0.5)
    assert empty.n_clusters == 0
