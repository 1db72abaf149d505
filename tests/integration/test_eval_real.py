"""Evaluations on real faces with the real model (templates shared with other tests).

London: neutral vs smiling of 102 people (every neutral against every smiling image), with
gender and ethnicity groups; ORL: open-set identification with 10 subjects left out.
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from faceledger.evaluate.identify import evaluate_identify
from faceledger.evaluate.pairs import evaluate_pairs
from faceledger.evaluate.protocols import read_image_list, read_pairs
from faceledger.evaluate.templates import ImageTemplates
from tests.conftest import TemplateSet


def as_lookup(ts: TemplateSet) -> ImageTemplates:
    """The shared session templates as the evaluation's lookup (no face → ``no_face``)."""
    vectors = {Path(p).resolve(): v for p, v in zip(ts.paths, ts.vectors, strict=True)}
    errors = {Path(p).resolve(): "no_face" for p in ts.failed}
    return ImageTemplates("dlib-resnet-v1", vectors, errors)


def subject_counts(data_dir: Path, column: str) -> Counter[str]:
    with open(data_dir / "london" / "subjects.csv", encoding="utf-8") as fh:
        return Counter(row[column] for row in csv.DictReader(fh))


@pytest.fixture(scope="module")
def london(london_templates: TemplateSet) -> ImageTemplates:
    return as_lookup(london_templates)


def test_london_gender_pairs(data_dir: Path, london: ImageTemplates) -> None:
    ev = evaluate_pairs(read_pairs(data_dir / "protocols" / "london_pairs_gender.csv"), london)
    j = ev.to_json()
    assert (j["pairs"], j["genuine"], j["impostor"]) == (10_404, 102, 10_302)
    assert j["no_face"] == 0 and j["images"] == 204
    # a frontal, studio-lit set: the model separates neutral vs smiling of the same person
    assert j["eer"] is not None and j["eer"] < 0.05
    assert j["folds"]["n"] == 10 and j["folds"]["accuracy_mean"] > 0.98
    # 10,302 impostor pairs measure FMR down to 1e-4, not 1e-5
    fnmr = j["fnmr_at_fmr"]
    assert fnmr["0.0001"] is not None and fnmr["0.00001"] is None
    assert fnmr["0.01"] <= fnmr["0.001"] <= fnmr["0.0001"] < 0.2
    op = j["fmr_operating_points"]["0.001"]
    assert op["false_matches"] <= 10 and op["fmr_ci"][0] <= op["fmr"] <= op["fmr_ci"][1]
    # groups: within-group impostor pairs are n*(n-1) (each neutral vs others' smiling)
    genders = subject_counts(data_dir, "gender")
    assert set(j["groups"]) == set(genders)
    for g, n in genders.items():
        assert j["groups"][g]["genuine"] == n
        assert j["groups"][g]["impostor"] == n * (n - 1)
    within = sum(g["impostor"] for g in j["groups"].values())
    assert j["cross_group"]["impostor"] == 10_302 - within
    assert j["threshold"]["rule"] == "fmr<=0.001"
    d = j["differential"]["fmr"]
    assert d["max_group"] in genders and (d["ratio"] is None or d["ratio"] >= 1.0)


def test_london_ethnicity_groups_partition_the_pairs(
    data_dir: Path, london: ImageTemplates
) -> None:
    ev = evaluate_pairs(
        read_pairs(data_dir / "protocols" / "london_pairs_ethnicity.csv"), london, folds=None
    )
    j = ev.to_json()
    eth = subject_counts(data_dir, "ethnicity")
    assert set(j["groups"]) == set(eth)
    assert sum(g["n"] for g in j["groups"].values()) + j["cross_group"]["n"] == 10_404
    assert j["groups"]["white"]["impostor"] == eth["white"] * (eth["white"] - 1)
    # per-group FMRs average back to the overall FMR at the same threshold
    t = j["threshold"]["value"]
    total_fm = sum(g["false_matches"] for g in j["groups"].values())
    total_fm += j["cross_group"]["false_matches"]
    assert total_fm == int(np.count_nonzero(ev.impostor_scores >= t))


def test_orl_open_set_identification(data_dir: Path, orl_templates: TemplateSet) -> None:
    ev = evaluate_identify(
        read_image_list(data_dir / "protocols" / "orl_gallery.csv"),
        read_image_list(data_dir / "protocols" / "orl_probes.csv"),
        as_lookup(orl_templates),
    )
    j = ev.to_json()
    assert (j["mated"], j["nonmated"], j["gallery_subjects"]) == (210, 100, 30)
    failed = {Path(p).resolve() for p in orl_templates.failed}
    assert j["no_face"] == sum(1 for e in ev.probes.entries if e.image in failed)
    cmc = j["cmc"]
    assert len(cmc) == 20 and all(a <= b for a, b in itertools.pairwise(cmc))
    assert j["rank1"] == cmc[0] and j["rank1"] > 0.9
    # 100 non-mated searches measure FPIR 0.1 and 0.01, not 0.003
    fnir = j["fnir_at_fpir"]
    assert fnir["0.003"] is None
    assert fnir["0.1"] is not None and fnir["0.01"] is not None
    assert fnir["0.1"] <= fnir["0.01"] < 0.5
    # with a threshold, FNIR at rank 1 can never beat the closed-set rank-1 miss rate
    assert fnir["0.1"] >= 1 - j["rank1"] - 1e-12
