"""The face-like generator reproduces the score statistics of the real templates it is fitted to."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from faceledger.errors import InvalidArgument
from faceledger.index.synthetic import FaceLikeModel, score_summary


def test_synthetic_scores_look_like_real_dlib_scores(orl_templates: Any) -> None:
    real_v, labels = orl_templates.vectors, np.asarray(orl_templates.subjects)
    model = FaceLikeModel.fit(real_v, labels)
    real = score_summary(real_v, labels)
    _, inverse = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(11)
    synth_v = model.templates(model.identities(inverse.max() + 1, rng), inverse, rng)
    synth = score_summary(synth_v, inverse)
    np.testing.assert_allclose(np.linalg.norm(synth_v, axis=1), 1.0, atol=1e-5)
    for key in ("impostor_mean", "genuine_mean", "impostor_p99"):
        assert abs(synth[key] - real[key]) < 0.02, (key, real[key], synth[key])
    for key in ("impostor_std", "genuine_std"):
        assert 0.5 < synth[key] / real[key] < 2.0, (key, real[key], synth[key])
    # what the model is for: uniform unit vectors are nothing like faces
    u = rng.standard_normal(real_v.shape)
    uniform = score_summary(
        (u / np.linalg.norm(u, axis=1, keepdims=True)).astype(np.float32), inverse
    )
    assert abs(uniform["impostor_mean"] - real["impostor_mean"]) > 0.5


def test_sampling_is_reproducible_and_identities_differ() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((30, 8))
    who = np.repeat(np.arange(30), 5)
    x = centres[who] + 0.1 * rng.standard_normal((150, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    model = FaceLikeModel.fit(x, who)
    a = model.templates(
        model.identities(4, np.random.default_rng(5)), [0, 0, 3], np.random.default_rng(6)
    )
    b = model.templates(
        model.identities(4, np.random.default_rng(5)), [0, 0, 3], np.random.default_rng(6)
    )
    np.testing.assert_array_equal(a, b)
    assert float(a[0] @ a[1]) > float(a[0] @ a[2])  # same identity closer than another one


def test_fit_refuses_data_without_repeated_identities() -> None:
    x = np.eye(4, dtype=np.float32)
    with pytest.raises(InvalidArgument):
        FaceLikeModel.fit(x, ["a", "b", "c", "d"])
    with pytest.raises(InvalidArgument):
        FaceLikeModel.fit(x, ["a", "a"])
