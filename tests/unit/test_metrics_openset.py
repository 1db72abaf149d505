"""Open-set 1:N metrics (CMC, FPIR, FNIR at FPIR) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.errors import InvalidArgument
from faceledger.evaluate.identify import exact_search
from faceledger.evaluate.intervals import clopper_pearson
from faceledger.evaluate.metrics import NotMeasurable
from faceledger.evaluate.openset import (
    IdentOperatingPoint,
    ProbeSearch,
    cmc,
    fnir_at_fpir,
    rates_at_threshold,
    threshold_at_fpir,
)

# Four mated searches (A..D enrolled) and four non-mated ones (X..W not enrolled).
SEARCHES = [
    ProbeSearch("A", True, (("A", 0.9), ("B", 0.5)), "g1"),  # mate rank 1, .9
    ProbeSearch("B", True, (("C", 0.8), ("B", 0.7)), "g1"),  # mate rank 2, .7
    ProbeSearch("C", True, (("C", 0.6), ("A", 0.6)), "g2"),  # tie: pessimistic rank 2, .6
    ProbeSearch("D", True, (), "g2"),  # no face in the probe: nothing returned
    ProbeSearch("X", False, (("A", 0.65), ("B", 0.3)), "g1"),  # top .65
    ProbeSearch("Y", False, (("B", 0.4),), "g1"),  # top .4
    ProbeSearch("Z", False, (), "g2"),  # no face: no candidate, never a false positive
    ProbeSearch("W", False, (("C", 0.2),), "g2"),  # top .2
]


def test_mate_rank_is_pessimistic_on_ties() -> None:
    assert [s.mate_rank for s in SEARCHES[:4]] == [1, 2, 2, None]
    assert [s.mate_score for s in SEARCHES[:4]] == [0.9, 0.7, 0.6, None]
    assert SEARCHES[6].top_score == float("-inf")


def test_cmc_by_hand() -> None:
    # rank<=1: A only (1/4); rank<=2: A, B, C (3/4); D is never found
    assert cmc(SEARCHES, 3) == [0.25, 0.75, 0.75]
    assert cmc(SEARCHES[4:], 3) is None  # no mated searches
    with pytest.raises(InvalidArgument):
        cmc(SEARCHES, 0)


def test_fpir_and_fnir_at_a_threshold() -> None:
    # T = .5: non-mated X (.65) returns a candidate -> FPIR 1/4
    # rank 1: only A's mate is first and >= .5 -> FNIR 3/4; rank 2: B and C found too -> 1/4
    op1 = rates_at_threshold(SEARCHES, 0.5, rank=1)
    assert (op1.false_positives, op1.nonmated, op1.fpir) == (1, 4, 0.25)
    assert (op1.misses, op1.mated, op1.fnir) == (3, 4, 0.75)
    assert op1.fpir_ci == clopper_pearson(1, 4)
    op2 = rates_at_threshold(SEARCHES, 0.5, rank=2)
    assert op2.fnir == 0.25


def test_fnir_at_fpir_by_hand() -> None:
    # 4 non-mated tops: -inf .2 .4 .65
    # FPIR <= .25 allows one false positive: T must exceed .4; the lowest observed score above
    #   it is .65 at rank 1 (FNIR 3/4) but .6 at rank 2 (C's mate), giving FNIR 1/4.
    # FPIR <= .5 allows two: lowest score above .2 is .4 -> FNIR (rank 1) 3/4.
    # FPIR <= .1 needs 10 non-mated searches: not measurable.
    ops = fnir_at_fpir(SEARCHES, [0.5, 0.25, 0.1], rank=1)
    half, quarter, tenth = ops[0.5], ops[0.25], ops[0.1]
    assert isinstance(half, IdentOperatingPoint) and isinstance(quarter, IdentOperatingPoint)
    assert (half.threshold, half.fpir, half.fnir) == (0.4, 0.5, 0.75)
    assert (quarter.threshold, quarter.fpir, quarter.fnir) == (0.65, 0.25, 0.75)
    assert isinstance(tenth, NotMeasurable) and (tenth.needed, tenth.available) == (10, 4)
    q2 = fnir_at_fpir(SEARCHES, [0.25], rank=2)[0.25]
    assert isinstance(q2, IdentOperatingPoint)
    assert (q2.threshold, q2.fpir, q2.fnir) == (0.6, 0.25, 0.25)
    assert threshold_at_fpir(SEARCHES, 0.25, rank=2) == 0.6


def test_no_nonmated_and_no_mated_edge_cases() -> None:
    mated_only = SEARCHES[:4]
    assert all(isinstance(op, NotMeasurable) for op in fnir_at_fpir(mated_only).values())
    nonmated_only = SEARCHES[4:]
    op = fnir_at_fpir(nonmated_only, [0.25])[0.25]
    assert isinstance(op, IdentOperatingPoint)
    assert op.fnir is None and op.fnir_ci is None and op.fpir == 0.25
    assert fnir_at_fpir([], [0.1])[0.1] == NotMeasurable(0.1, 10, 0)


def test_exact_search_ranks_subjects_by_their_best_image() -> None:
    e = np.eye(3, dtype=np.float32)
    gallery = np.stack([e[0], e[1], (e[0] + e[2]) / np.sqrt(2), e[2]]).astype(np.float32)
    subjects = ["bob", "amy", "cat", "cat"]
    probe = np.stack([e[2], e[1]]).astype(np.float32)
    out = exact_search(gallery, subjects, probe, k=5)
    # probe 0 = e2: cat's best image is e2 itself (1.0); amy and bob score 0 -> name order
    assert [c[0] for c in out[0]] == ["cat", "amy", "bob"]
    assert out[0][0][1] == pytest.approx(1.0)
    assert out[1][0][0] == "amy" and out[1][0][1] == pytest.approx(1.0)
    assert len(exact_search(gallery, subjects, probe, k=1)[0]) == 1
    assert exact_search(np.zeros((0, 3), np.float32), [], probe, k=3) == [[], []]
    with pytest.raises(InvalidArgument):
        exact_search(gallery, subjects[:2], probe, k=3)
