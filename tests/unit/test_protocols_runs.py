"""Pairs, identify and impostors evaluations on hand-made templates (no model needed).

Templates are chosen unit vectors so every score is known: the evaluation logic (no-face
accounting, groups, the search seam, JSON keys) is checked against hand-computed results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from faceledger.evaluate.identify import evaluate_identify, exact_search
from faceledger.evaluate.impostors import default_group_columns, evaluate_impostors
from faceledger.evaluate.intervals import clopper_pearson
from faceledger.evaluate.jsonio import dumps
from faceledger.evaluate.pairs import evaluate_pairs
from faceledger.evaluate.protocols import read_image_list, read_labels, read_pairs
from faceledger.evaluate.templates import ImageTemplates, Vectors

V = {
    "a": [1.0, 0.0, 0.0],
    "b": [0.6, 0.8, 0.0],
    "c": [0.8, 0.6, 0.0],
    "d": [0.0, 1.0, 0.0],
    "z": [0.0, 0.0, 1.0],
}


def make_templates(folder: Path, names: Sequence[str], failed: Sequence[str]) -> ImageTemplates:
    (folder / "img").mkdir(exist_ok=True)
    vectors = {}
    errors = {}
    for n in [*names, *failed]:
        p = folder / "img" / f"{n}.jpg"
        p.write_bytes(b"x")
        if n in failed:
            errors[p.resolve()] = "no_face"
        else:
            vectors[p.resolve()] = np.asarray(V[n], dtype=np.float32)
    return ImageTemplates("test-model", vectors, errors)


def test_pairs_no_face_counts_as_non_match_and_groups(tmp_path: Path) -> None:
    tm = make_templates(tmp_path, ["a", "b", "c", "d"], ["e"])
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        "a,b,same,group_a,group_b\n"
        "img/a.jpg,img/c.jpg,1,f,f\n"  # .8
        "img/b.jpg,img/c.jpg,1,f,f\n"  # .96
        "img/a.jpg,img/e.jpg,1,f,f\n"  # no face: -inf
        "img/a.jpg,img/b.jpg,0,f,f\n"  # .6
        "img/a.jpg,img/d.jpg,0,f,m\n"  # 0
        "img/c.jpg,img/d.jpg,0,f,m\n"  # .6
        "img/b.jpg,img/d.jpg,0,f,m\n"  # .8
    )
    ev = evaluate_pairs(read_pairs(csv), tm, folds=None, threshold=0.7, calibrated=(0.25, 0.7))
    j = json.loads(dumps(ev.to_json()))
    assert (j["pairs"], j["genuine"], j["impostor"]) == (7, 3, 4)
    assert (j["no_face"], j["no_face_genuine"], j["no_face_impostor"]) == (1, 1, 0)
    assert j["images_failed"] == {"no_face": 1} and j["images"] == 5
    # t=.6: FMR 3/4, FNMR 1/3; t=.8: FMR 1/4, FNMR 1/3 -> horizontal step, EER 1/3 at t=.8
    assert j["eer"] == pytest.approx(1 / 3)
    assert j["eer_threshold"] == pytest.approx(0.8)
    # 4 impostor pairs cannot show FMR 0.01 or below
    assert j["fnmr_at_fmr"] == {"0.01": None, "0.001": None, "0.0001": None, "0.00001": None}
    assert j["fmr_operating_points"]["0.01"]["measurable"] is False
    assert j["folds"] is None
    assert j["threshold"] == {"value": 0.7, "rule": "given"}
    # at .7: group f: genuine .8 .96 -inf -> FNMR 1/3; impostor .6 -> FMR 0
    f = j["groups"]["f"]
    assert (f["genuine"], f["impostor"], f["false_non_matches"], f["fmr"]) == (3, 1, 1, 0.0)
    assert f["fnmr"] == pytest.approx(1 / 3)
    assert set(j["groups"]) == {"f"}
    cross = j["cross_group"]
    assert (cross["impostor"], cross["false_matches"]) == (3, 1)  # only b-d (.8) >= .7
    assert j["accuracy"] == pytest.approx(5 / 7)
    # the model card's threshold (declared FMR .25 at .7) measured here: 1 of 4 impostors
    cal = j["calibration_check"]
    assert (cal["target_fmr"], cal["threshold"], cal["measured_fmr"]) == (0.25, 0.7, 0.25)
    assert cal["fnmr"] == pytest.approx(1 / 3)
    assert math.isinf(ev.scores[2]) and ev.failed.tolist() == [0, 0, 1, 0, 0, 0, 0]


def test_pairs_threshold_falls_back_to_eer_and_folds_run(tmp_path: Path) -> None:
    tm = make_templates(tmp_path, ["a", "b", "c", "d"], [])
    csv = tmp_path / "p.csv"
    csv.write_text(
        "a,b,same\nimg/a.jpg,img/c.jpg,1\nimg/a.jpg,img/d.jpg,0\n"
        "img/b.jpg,img/c.jpg,1\nimg/c.jpg,img/d.jpg,0\n"
    )
    ev = evaluate_pairs(read_pairs(csv), tm, folds=2, target_fmr=1e-3)
    j = ev.to_json()
    assert j["threshold"]["rule"] == "eer"  # 2 impostor pairs cannot measure FMR 1e-3
    assert j["folds"]["n"] == 2 and len(j["folds"]["per_fold"]) == 2
    assert j["groups"] == {} and j["differential"] is None


def test_identify_mated_nonmated_and_failures(tmp_path: Path) -> None:
    tm = make_templates(tmp_path, ["a", "d", "b"], ["g3", "p4"])
    # gallery: s1=a, s2=d, s3 has no usable image
    gal = tmp_path / "g.csv"
    gal.write_text("image,subject\nimg/a.jpg,s1\nimg/d.jpg,s2\nimg/g3.jpg,s3\n")
    # probes: a (s1 mated), g3 again as s3 (mated, no template), b (sX not enrolled), p4 (s2)
    prb = tmp_path / "p.csv"
    prb.write_text(
        "image,subject,group\nimg/a.jpg,s1,x\nimg/g3.jpg,s3,x\nimg/b.jpg,sX,y\nimg/p4.jpg,s2,y\n"
    )
    ev = evaluate_identify(read_image_list(gal), read_image_list(prb), tm, threshold=0.9)
    j = ev.to_json()
    assert (j["searches"], j["mated"], j["nonmated"], j["no_face"]) == (4, 3, 1, 2)
    assert (j["gallery_subjects"], j["gallery_templates"]) == (3, 2)
    assert j["gallery_subjects_without_template"] == 1
    assert j["rank1"] == pytest.approx(1 / 3)
    assert len(j["cmc"]) == 20 and j["cmc"][-1] == pytest.approx(1 / 3)
    # one non-mated search cannot measure FPIR 0.1 or below
    assert j["fnir_at_fpir"] == {"0.1": None, "0.01": None, "0.003": None}
    # at .9: the non-mated probe b scores .8 against s2 -> no false positive; 2 of 3 missed
    at = j["at_threshold"]
    assert (at["false_positives"], at["misses"]) == (0, 2)
    assert j["groups"]["x"] == {
        "mated": 2, "nonmated": 0, "rank1": 0.5, "fnir": 0.5,
        "fnir_ci": at_ci(1, 2), "fpir": None, "fpir_ci": None,
    }  # fmt: skip
    assert j["groups"]["y"]["fpir"] == 0.0 and j["groups"]["y"]["fnir"] == 1.0


def at_ci(k: int, n: int) -> list[float]:
    return list(clopper_pearson(k, n))


def test_identify_uses_the_injected_search(tmp_path: Path) -> None:
    tm = make_templates(tmp_path, ["a", "d", "b"], [])
    gal = tmp_path / "g.csv"
    gal.write_text("image,subject\nimg/a.jpg,s1\nimg/d.jpg,s2\n")
    prb = tmp_path / "p.csv"
    prb.write_text("image,subject\nimg/a.jpg,s1\nimg/b.jpg,sX\n")
    calls: list[tuple[int, list[str], int, int]] = []

    def always_s2(
        g: Vectors,
        subjects: Sequence[str],
        p: Vectors,
        k: int,
        /,
        *,
        gallery_quality: Sequence[float | None] | None = None,
    ) -> list[list[tuple[str, float]]]:
        calls.append((g.shape[0], list(subjects), p.shape[0], k))
        return [[("s2", 0.5)] for _ in range(p.shape[0])]

    ev = evaluate_identify(read_image_list(gal), read_image_list(prb), tm, search=always_s2)
    assert calls == [(2, ["s1", "s2"], 2, 20)]
    assert ev.cmc is not None and ev.cmc[0] == 0.0  # the fake never returns s1
    ref = evaluate_identify(read_image_list(gal), read_image_list(prb), tm, search=exact_search)
    assert ref.cmc is not None and ref.cmc[0] == 1.0


def test_impostors_by_group_and_combined(tmp_path: Path) -> None:
    tm = make_templates(tmp_path, ["a", "b", "d", "z"], ["e"])
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "image,age,gender,race\n"
        "img/a.jpg,30,f,x\nimg/b.jpg,40,f,x\nimg/d.jpg,5,m,y\nimg/z.jpg,70,m,x\nimg/e.jpg,20,m,y\n"
    )
    labels = read_labels(csv)
    assert default_group_columns(labels) == ["gender", "race"]
    # pair scores: ab .6, ad 0, az 0, bd .8, bz 0, dz 0 (e has no face: left out)
    ev = evaluate_impostors(labels, tm, threshold=0.5)
    j = json.loads(dumps(ev.to_json()))
    assert (j["images"], j["images_used"], j["impostor"]) == (5, 4, 6)
    assert j["images_failed"] == {"no_face": 1}
    assert j["fmr"] == pytest.approx(2 / 6)
    g = j["columns"]["gender"]
    # f: a,b -> ab .6 (false match); m: d,z -> dz 0; cross: ad az bd bz -> bd .8
    assert (g["groups"]["f"]["pairs"], g["groups"]["f"]["fmr"]) == (1, 1.0)
    assert (g["groups"]["m"]["pairs"], g["groups"]["m"]["fmr"]) == (1, 0.0)
    assert (g["cross_group"]["pairs"], g["cross_group"]["fmr"]) == (4, 0.25)
    assert g["same_group_fmr"] == 0.5 and g["same_to_cross_ratio"] == 2.0
    assert g["differential"]["ratio"] is None  # lowest group FMR is 0
    assert g["matrix"]["f"]["m"] == 0.25 and g["matrix"]["m"]["f"] == 0.25
    r = j["columns"]["race"]
    # x: a,b,z -> ab .6, az 0, bz 0 -> 1/3; y: d alone -> no pairs
    assert r["groups"]["x"]["pairs"] == 3 and r["groups"]["x"]["fmr"] == pytest.approx(1 / 3)
    assert r["groups"]["y"]["pairs"] == 0 and r["groups"]["y"]["fmr"] is None
    assert r["cross_group"]["fmr"] == pytest.approx(1 / 3)  # ad, bd, dz -> bd
    ages = evaluate_impostors(labels, tm, group_columns=["age", "gender"], threshold=0.5)
    bands = ages.to_json()["columns"]["age"]  # 30, 40, 5, 70 -> one person per band
    assert set(bands["groups"]) == {"20-34", "35-49", "0-9", "65+"}
    assert bands["cross_group"]["pairs"] == 6
    assert "20-34/f" in ages.to_json()["columns"]["age+gender"]["groups"]
    combo = j["columns"]["gender+race"]
    assert set(combo["groups"]) == {"f/x", "m/y", "m/x"}
    assert combo["groups"]["f/x"]["fmr"] == 1.0
    assert combo["cross_group"]["pairs"] == 5
