"""Which AS-norm cohort: a fixed sample of the gallery, or the gallery itself — measured.

Random draws, real templates (the default pipeline's, cached like ``openset.py``'s): the 147
people of the protocols with two or more images (London, ORL, johns) enrol one image each and
search with the others (mated); N random UTKFace images (adults and children) are enrolled
as distractors; the remaining UTKFace adults are non-mated probes, and every mated probe is
searched once more as a non-mated one with its mate's subject taken out of the gallery: out
of the candidates *and* of every cohort statistic (only dropping the mate from the candidate
list leaves its high score in the probe's cohort statistics and lowers every impostor's
score: flattering; ``--flattering`` prints that too). Each cohort rule
scores the same searches with the engine's own normalisation functions
(``faceledger.match.normalise``: probe side leaves out the candidate's subject, candidate side
its own) on every gallery template, not a shortlist. Printed per rule: FNIR at FPIR 0.1, 0.01
and 0.003 over all draws (thresholds measured on the non-mated searches). The same draws are
also searched with ``face_recognition``'s own pipeline (``openset_baseline.py``'s reference,
raw Euclidean distance, where dropping the mate from the list is exact), and each rule's FNIR
at FPIR 0.01 is printed over face_recognition's.

    .venv/bin/python benchmarks/openset_cohort.py [--distractors 350 700] [--draws 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceledger import Settings
from faceledger.evaluate.openset import IdentOperatingPoint, ProbeSearch, fnir_at_fpir
from faceledger.evaluate.protocols import ImageList, ListEntry, read_image_list
from faceledger.match.normalise import Cohort, as_norm, candidate_stats, probe_stats, select_evenly
from faceledger.models import ModelRegistry

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from openset import augmented_nonmated, templates_for  # noqa: E402
from openset_baseline import fr_encodings, fr_searches, utkface_rest  # noqa: E402

RULES: tuple[tuple[str, int | None, int | float], ...] = (
    ("fixed 200, top 50 (before)", 200, 50),
    ("whole gallery, top 50 (default)", None, 50),
    ("whole gallery, top 100", None, 100),
    ("whole gallery, top 10 %", None, 0.10),
    ("whole gallery, top 25 %", None, 0.25),
)
TARGETS = (0.1, 0.01, 0.003)


def scores(
    gallery: npt.NDArray[np.float64],
    subjects: npt.NDArray[np.int64],
    probes: npt.NDArray[np.float64],
    cohort_size: int | None,
    top: int | float,
    leave_out: Sequence[int | None] | None = None,
) -> npt.NDArray[np.float64]:
    """AS-norm score of every probe against every gallery template under one cohort rule;
    with ``leave_out``, probe i's search is of the gallery without that subject (its
    templates score -inf and are out of every cohort statistic)."""
    n = gallery.shape[0]
    rows = select_evenly(np.arange(n), cohort_size or n)
    k = int(top) if isinstance(top, int) else max(50, int(top * rows.size))
    cohort = Cohort(gallery[rows].astype(np.float32), subjects[rows])
    cand = {None: candidate_stats(gallery, subjects, cohort, k)}
    out = np.empty((probes.shape[0], n))
    for i, p in enumerate(probes):
        gone = None if leave_out is None else leave_out[i]
        if gone not in cand:
            cand[gone] = candidate_stats(gallery, subjects, cohort, k, leave_out=gone)
        pm, ps = probe_stats(p, subjects, cohort, k, leave_out=gone)
        out[i] = as_norm(gallery @ p, pm, ps, cand[gone].mean, cand[gone].std)
        if gone is not None:
            out[i, subjects == gone] = -np.inf
    return out


def ranked(
    z: npt.NDArray[np.float64], subjects: npt.NDArray[np.int64], truth: Sequence[int]
) -> list[ProbeSearch]:
    """Per probe, the best 20 subjects (best template each), as the evaluation reads them."""
    enrolled = set(subjects.tolist())
    out = []
    for row, who in zip(z, truth, strict=True):
        best: dict[str, float] = {}
        for j in np.argsort(-row)[:400]:
            if np.isfinite(row[j]):
                best.setdefault(str(subjects[j]), float(row[j]))
        cands = tuple(sorted(best.items(), key=lambda c: -c[1])[:20])
        out.append(ProbeSearch(str(who), who in enrolled, cands))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--protocols", type=Path, default=Path("protocols"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--distractors", type=int, nargs="+", default=[350, 700])
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument(
        "--flattering", action="store_true", help="also: mate-removed by candidate list only"
    )
    ap.add_argument("--fr-python", type=Path, default=HERE / ".venv-fr/bin/python")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "faceledger-bench"
    )
    args = ap.parse_args()
    lists = [
        read_image_list(args.protocols / f"openset_{s}_{r}.csv")
        for s in ("dev", "test")
        for r in ("gallery", "probes")
    ]
    entries = [e for lst in lists for e in lst.entries] + list(utkface_rest(lists, args.data))
    settings = Settings()
    card = ModelRegistry().get(settings.model_id)
    tm = templates_for([ImageList(lists[0].source, tuple(entries), False)], settings, card)
    by_subject: dict[str, list[ListEntry]] = {}
    for e in entries:
        if tm.vectors.get(e.image) is not None:
            by_subject.setdefault(e.subject, []).append(e)
    enc = None
    if args.fr_python.exists():
        paths = sorted({e.image for e in entries})
        enc = fr_encodings(paths, args.fr_python, args.procs, args.cache_dir)
    else:
        print(f"no face_recognition environment at {args.fr_python}: its row is left out")
    mated = sorted(s for s, es in by_subject.items() if len(es) >= 2)
    utk = sorted(s for s in by_subject if s.startswith("utk"))
    codes = {s: i for i, s in enumerate(sorted(by_subject))}
    print(f"{len(mated)} mated people, {len(utk)} UTKFace images ({args.draws} draws per size)")

    def vec(e: ListEntry) -> npt.NDArray[np.float64]:
        return np.asarray(tm.vectors[e.image], dtype=np.float64)

    for n_distract in args.distractors:
        rng = np.random.default_rng(n_distract)
        results: dict[str, list[ProbeSearch]] = {name: [] for name, _, _ in RULES}
        reference: list[ProbeSearch] = []
        if args.flattering:
            results.update({f"{name}, flattering": [] for name, _, _ in RULES})
        for _ in range(args.draws):
            pool = [str(s) for s in rng.permutation(utk)]
            distract, rest = pool[:n_distract], pool[n_distract:]
            gal = [by_subject[s][0] for s in mated + distract]
            prb = [e for s in mated for e in by_subject[s][1:]]
            prb += [by_subject[s][0] for s in rest if s.startswith("utk:")]  # adults only
            g = np.stack([vec(e) for e in gal])
            gs = np.array([codes[e.subject] for e in gal], dtype=np.int64)
            p = np.stack([vec(e) for e in prb])
            truth = [codes[e.subject] for e in prb]
            if enc is not None:
                src = lists[0].source
                found = fr_searches(ImageList(src, tuple(gal), False),
                                    ImageList(src, tuple(prb), False), enc)  # fmt: skip
                reference += [s for s in found if s.mated] + augmented_nonmated(found)
            held = set(gs.tolist())
            nm = np.array([t in held for t in truth])
            for name, size, top in RULES:
                z = scores(g, gs, p, size, top)
                found = ranked(z, gs, truth)
                results[name] += [s for s in found if s.mated]  # mated searches
                results[name] += [s for s in found if not s.mated]  # true non-mated
                # each mated probe again, its subject out of the gallery: a non-mated search
                gone = [truth[i] for i in np.flatnonzero(nm)]
                alone = scores(g, gs, p[nm], size, top, leave_out=gone)
                results[name] += [
                    ProbeSearch(s.subject, False, s.candidates)
                    for s in ranked(alone, gs, [-1] * len(gone))
                ]
                if args.flattering:
                    results[f"{name}, flattering"] += [s for s in found if s.mated]
                    results[f"{name}, flattering"] += augmented_nonmated(found)
        print(f"\n{len(mated) + n_distract} enrolled")
        print(
            f"{'cohort rule':<46}{'non-mated':>10}"
            + "".join(f"  FNIR@{t:<5}" for t in TARGETS)
            + "  ratio@0.01"
        )
        if reference:
            results = {"face_recognition (HOG, Euclidean)": reference, **results}
        ref = fnir_at_fpir(reference, TARGETS).get(0.01) if reference else None
        for name, every in results.items():
            points = fnir_at_fpir(every, TARGETS)
            cells = [
                f"{p.fnir:>11.3f}" if isinstance(p, IdentOperatingPoint) else f"{'n/a':>11}"
                for p in points.values()
            ]
            at = points[0.01]
            ratio = (
                f"{at.fnir / ref.fnir:>11.2f}"
                if isinstance(at, IdentOperatingPoint)
                and isinstance(ref, IdentOperatingPoint)
                and ref.fnir > 0
                else ""
            )
            nonmated = sum(1 for s in every if not s.mated)
            print(f"{name:<46}{nonmated:>10}" + " ".join(cells) + ratio)


if __name__ == "__main__":
    main()
