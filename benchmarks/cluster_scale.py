"""Clustering at scale (issue #25): time per stage and peak memory at 1k / 10k / 100k faces.

Synthetic face-like templates (not faces: see benchmarks/README.md, "Clustering at scale"):

- every template is near one mean direction (real dlib templates sit in a narrow cone: the
  model card's impostor median is cosine 0.83), an identity is the mean plus a demographic
  group offset (8 groups) plus its own offset, in an anisotropic spectrum (variance of
  dimension i ∝ i^-0.8), the offset's length varying per identity (lognormal, σ 0.27);
- a face is its identity's centre plus isotropic noise whose level varies per face
  (lognormal around 0.17, σ 0.3); the noisiest 15 % fail the quality gates (not seedable);
- identity sizes drawn like a case: Zipf (exponent 2) capped at n / 50 (at most 500) faces,
  most people seen once; 20 % of the faces are in group photos of 2–5 different people
  (cannot-link).

The parameters were fitted so that impostor and genuine cosine similarities match the model
card's calibration (``--fit`` prints the match). Each size runs in its own process so its peak
RSS is its own; stages are timed as ``cluster_faces`` runs them, and the result is checked to be
``cluster_faces``'s. The reference, in the same run, is the dense path this replaced (faces ×
clusters matrices whole, a scan per cluster) at the sizes given by ``--dense``.

    .venv/bin/python benchmarks/cluster_scale.py [--sizes 1000,10000,100000] [--fmr 1e-5]
        [--dense 1000,10000] [--fit] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlib
import numpy as np
import numpy.typing as npt

from faceledger.cluster import cluster_faces, margin_at_fmr, threshold_at_fmr
from faceledger.cluster.algorithms import split_cannot_link
from faceledger.cluster.faces import _join, _scores
from faceledger.cluster.graph import edges_above, relabel
from faceledger.evaluate.clustering import score
from faceledger.models.card import ModelCard

CARD = Path(__file__).resolve().parents[1] / "src/faceledger/models/cards/dlib-resnet-v1.json"
DIM = 128
SPECTRUM = 0.8
OFFSET, OFFSET_SPREAD = 0.36, 0.27
GROUPS, GROUP_OFFSET = 8, 0.22
NOISE, NOISE_SPREAD = 0.17, 0.3
UNSEEDABLE = 0.15
MAX_IDENTITY = 500
GROUP_PHOTO_SHARE = 0.2

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Case:
    vectors: F32
    identity: npt.NDArray[np.int64]
    sources: list[str]
    seedable: npt.NDArray[np.bool_]


def _unit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return out


def identity_sizes(n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Identity sizes summing to ``n``: Zipf(2), capped at n / 50 (10 to :data:`MAX_IDENTITY`)."""
    sizes = np.minimum(rng.zipf(2.0, size=n), max(10, min(MAX_IDENTITY, n // 50)))
    total = np.cumsum(sizes)
    k = int(np.searchsorted(total, n)) + 1
    sizes = sizes[:k].copy()
    sizes[-1] -= int(total[k - 1]) - n
    return sizes[sizes > 0].astype(np.int64)


def templates(
    sizes: npt.NDArray[np.int64], rng: np.random.Generator
) -> tuple[F32, npt.NDArray[np.float64]]:
    """Face templates of identities of ``sizes`` and each face's noise level."""
    n_ids, n = sizes.size, int(sizes.sum())
    rotation = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0]
    scale = np.r_[0.0, np.sqrt(_spectrum())]  # dimension 0 is the mean direction
    groups = rng.normal(size=(GROUPS, DIM)) * scale
    own = rng.normal(size=(n_ids, DIM)) * scale
    length = OFFSET * np.exp(OFFSET_SPREAD * rng.normal(size=(n_ids, 1)))
    centres = GROUP_OFFSET * groups[rng.integers(0, GROUPS, n_ids)] + length * own
    centres[:, 0] += 1.0
    centres = _unit(centres)
    identity = np.repeat(np.arange(n_ids), sizes)
    noise = NOISE * np.exp(NOISE_SPREAD * rng.normal(size=n))
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 20000):  # float64 work in slices: the 100k case stays small
        sl = slice(start, start + 20000)
        jitter = rng.normal(size=(identity[sl].size, DIM)) / np.sqrt(DIM)
        face = centres[identity[sl]] + noise[sl, None] * jitter
        out[sl] = (_unit(face) @ rotation.T).astype(np.float32)
    return out, noise


def _spectrum() -> npt.NDArray[np.float64]:
    lam = np.arange(1, DIM, dtype=np.float64) ** -SPECTRUM
    return lam / lam.sum()


def make_case(n: int, seed: int = 0) -> Case:
    """``n`` synthetic faces: identities, group photos (cannot-link), quality gates."""
    rng = np.random.default_rng(seed)
    sizes = identity_sizes(n, rng)
    vectors, noise = templates(sizes, rng)
    identity = np.repeat(np.arange(sizes.size), sizes).astype(np.int64)
    order = rng.permutation(n)  # faces in no particular order, as a folder would give them
    vectors, identity, noise = vectors[order], identity[order], noise[order]
    sources = [f"img{i}" for i in range(n)]
    pool = rng.permutation(n)[: int(GROUP_PHOTO_SHARE * n)].tolist()
    photo = 0
    while pool:
        size = int(rng.integers(2, 6))
        take, pool = pool[:size], pool[size:]
        seen: set[int] = set()
        for face in take:
            if int(identity[face]) not in seen:  # one person appears once in a photo
                seen.add(int(identity[face]))
                sources[face] = f"group{photo}"
        photo += 1
    seedable = noise < np.quantile(noise, 1.0 - UNSEEDABLE)
    return Case(vectors, identity, sources, seedable)


def fit_report(seed: int = 1) -> dict[str, Any]:
    """Impostor and genuine cosine similarities of 3,000 identities × 2 faces vs the card."""
    card = ModelCard.load(CARD)
    assert card.calibration is not None
    rng = np.random.default_rng(seed)
    sizes = np.full(3000, 2, dtype=np.int64)
    x, _ = templates(sizes, rng)
    ident = np.repeat(np.arange(sizes.size), 2)
    sims = x @ x.T
    iu = np.triu_indices(len(x), 1)
    s = sims[iu]
    same = ident[iu[0]] == ident[iu[1]]
    imp, gen = np.sort(s[~same])[::-1], s[same]
    rows = []
    for fmr in (0.5, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5):
        t = card.calibration.threshold_for(fmr)
        rows.append(
            {
                "fmr": fmr,
                "card_threshold": round(t, 4),
                "synthetic_threshold": round(float(imp[int(fmr * imp.size)]), 4),
                "synthetic_fnmr": round(float((gen < t).mean()), 4),
            }
        )
    return {
        "impostor_pairs": int(imp.size),
        "genuine_pairs": int(gen.size),
        "genuine_median": round(float(np.median(gen)), 4),
        "rows": rows,
    }


def _timed(stages: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0
    return out


def staged(case: Case, threshold: float, margin: float) -> tuple[Any, dict[str, float]]:
    """``cluster_faces(method="whispers")`` stage by stage (the same calls, timed)."""
    x, src, seeds = case.vectors, case.sources, case.seedable
    st: dict[str, float] = {}
    idx = np.flatnonzero(seeds)
    xs, ss = x[idx], [src[i] for i in idx]
    lo, hi, sims = _timed(st, "knn_graph", lambda: edges_above(xs, threshold))

    def whisper() -> npt.NDArray[np.int64]:
        found = dlib.chinese_whispers(
            [(int(a), int(b), float(s)) for a, b, s in zip(lo, hi, sims, strict=True)]
        )
        raw = np.arange(len(idx), dtype=np.int64) + len(idx)
        raw[: len(found)] = found
        return relabel(raw)

    seeded = _timed(st, "whispers", whisper)
    seeded = _timed(st, "cannot_link", lambda: split_cannot_link(xs, seeded, ss))
    labels = np.full(len(x), -1, dtype=np.int64)
    labels[idx] = seeded
    labels = _timed(st, "join", lambda: _join(x, labels, np.flatnonzero(~seeds), src, threshold))
    own, _alt, alt_score = _timed(st, "ambiguity", lambda: _scores(x, labels))
    near = ~np.isnan(alt_score) & (alt_score >= threshold - margin)
    close = np.isnan(own) | (own - np.nan_to_num(alt_score, nan=-np.inf) < margin)
    ambiguous = np.flatnonzero((labels >= 0) & near & close)
    return (labels, ambiguous, int(lo.size)), st


# --- the dense path this replaced (reference): faces × clusters matrices held whole ---------


def dense_join(
    x: F32, labels: npt.NDArray[np.int64], joiners: npt.NDArray[np.intp], src: list[str], t: float
) -> npt.NDArray[np.int64]:
    k = int(labels.max(initial=-1)) + 1
    if k == 0 or joiners.size == 0:
        return labels
    seeded = labels >= 0
    onehot = np.zeros((x.shape[0], k), dtype=np.float32)
    onehot[np.flatnonzero(seeded), labels[seeded]] = 1.0
    mean = (x[joiners] @ (x.T @ onehot)) / onehot.sum(axis=0)
    held = [{src[i] for i in np.flatnonzero(labels == c)} for c in range(k)]
    out = labels.copy()
    order = np.dstack(np.unravel_index(np.argsort(-mean, axis=None), mean.shape))[0]
    for r, c in order:
        if mean[r, c] < t:
            break
        face = int(joiners[r])
        if out[face] >= 0 or src[face] in held[c]:
            continue
        out[face] = c
        held[c].add(src[face])
    return relabel(out)


def dense_scores(x: F32, labels: npt.NDArray[np.int64]) -> tuple[F32, Any, F32]:
    n, k = x.shape[0], int(labels.max(initial=-1)) + 1
    own = np.full(n, np.nan, dtype=np.float32)
    alt = np.full(n, -1, dtype=np.int64)
    alt_score = np.full(n, np.nan, dtype=np.float32)
    members = np.flatnonzero(labels >= 0)
    onehot = np.zeros((n, k), dtype=np.float32)
    onehot[members, labels[members]] = 1.0
    counts = onehot.sum(axis=0)
    total = x @ (x.T @ onehot)
    rows = members
    own_n = counts[labels[rows]] - 1
    own_sum = total[rows, labels[rows]] - np.einsum("ij,ij->i", x[rows], x[rows])
    with np.errstate(invalid="ignore", divide="ignore"):
        own[rows] = np.where(own_n > 0, own_sum / np.maximum(own_n, 1), np.nan)
    mean = total / counts
    mean[rows, labels[rows]] = -np.inf
    best = np.argmax(mean, axis=1)
    sc = mean[np.arange(n), best]
    ok = np.isfinite(sc)
    alt[ok] = best[ok]
    alt_score[ok] = sc[ok]
    return own, alt, alt_score


def dense_split(x: F32, labels: npt.NDArray[np.int64], sources: list[str]) -> npt.NDArray[np.int64]:
    out = labels.copy()
    nxt = int(out.max(initial=-1)) + 1
    for c in np.unique(out[out >= 0]):
        idx = np.flatnonzero(out == c)
        fit = (x[idx] @ x[idx].sum(axis=0) - 1.0) / max(len(idx) - 1, 1)
        kept: set[str] = set()
        for k in idx[np.argsort(-fit, kind="stable")]:
            if sources[int(k)] in kept:
                out[k] = nxt
                nxt += 1
            else:
                kept.add(sources[int(k)])
    return relabel(out)


def dense_reference(
    case: Case, threshold: float, margin: float, whispered: npt.NDArray[np.int64]
) -> tuple[Any, dict[str, float]]:
    """The old stages after whispers (same whispers labels in): split, join, ambiguity."""
    x, src, seeds = case.vectors, case.sources, case.seedable
    st: dict[str, float] = {}
    idx = np.flatnonzero(seeds)
    seeded = _timed(
        st, "cannot_link", lambda: dense_split(x[idx], whispered, [src[i] for i in idx])
    )
    labels = np.full(len(x), -1, dtype=np.int64)
    labels[idx] = seeded
    labels = _timed(
        st, "join", lambda: dense_join(x, labels, np.flatnonzero(~seeds), src, threshold)
    )
    own, _alt, alt_score = _timed(st, "ambiguity", lambda: dense_scores(x, labels))
    near = ~np.isnan(alt_score) & (alt_score >= threshold - margin)
    close = np.isnan(own) | (own - np.nan_to_num(alt_score, nan=-np.inf) < margin)
    return (labels, np.flatnonzero((labels >= 0) & near & close)), st


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: getrusage's ru_maxrss would carry the parent's
    peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(n: int, fmr: float, dense: bool, check: bool) -> dict[str, Any]:
    """One size in this process: build, cluster stage by stage, score, optionally compare."""
    card = ModelCard.load(CARD)
    threshold, margin = threshold_at_fmr(card, fmr), margin_at_fmr(card, fmr)
    t0 = time.perf_counter()
    case = make_case(n)
    build_s = time.perf_counter() - t0
    rss_before = peak_rss_mb()
    (labels, ambiguous, edges), st = staged(case, threshold, margin)
    truth = [str(i) for i in case.identity]
    sc = score(labels, truth)
    out: dict[str, Any] = {
        "n": n,
        "fmr": fmr,
        "threshold": round(threshold, 4),
        "margin": round(margin, 4),
        "identities": int(np.unique(case.identity).size),
        "seedable": int(case.seedable.sum()),
        "edges": edges,
        "build_s": round(build_s, 2),
        "stages_s": {k: round(v, 2) for k, v in st.items()},
        "total_s": round(sum(st.values()), 2),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "clusters": int(labels.max(initial=-1)) + 1,
        "unassigned": int((labels < 0).sum()),
        "ambiguous": int(ambiguous.size),
        "bcubed": [
            round(sc.bcubed_precision, 4),
            round(sc.bcubed_recall, 4),
            round(sc.bcubed_f1, 4),
        ],
    }
    if check:  # the staged run is cluster_faces's result
        res = cluster_faces(
            case.vectors, case.sources, threshold=threshold, margin=margin, seedable=case.seedable
        )
        out["same_as_cluster_faces"] = bool(
            np.array_equal(res.labels, labels) and tuple(ambiguous.tolist()) == res.ambiguous
        )
    if dense:
        idx = np.flatnonzero(case.seedable)
        whispered = _whispers_only(case.vectors[idx], threshold)
        (dl, da), dst = dense_reference(case, threshold, margin, whispered)
        out["dense_stages_s"] = {k: round(v, 2) for k, v in dst.items()}
        out["dense_peak_rss_mb"] = round(peak_rss_mb(), 1)
        out["same_as_dense"] = bool(np.array_equal(dl, labels) and np.array_equal(da, ambiguous))
    return out


def _whispers_only(x: F32, threshold: float) -> npt.NDArray[np.int64]:
    lo, hi, sims = edges_above(x, threshold)
    found = dlib.chinese_whispers(
        [(int(a), int(b), float(s)) for a, b, s in zip(lo, hi, sims, strict=True)]
    )
    raw = np.arange(len(x), dtype=np.int64) + len(x)
    raw[: len(found)] = found
    return relabel(raw)


def _table(results: list[dict[str, Any]]) -> str:
    head = (
        "| faces | identities | edges | k-NN graph | whispers | cannot-link | join | ambiguity |"
        " total | peak RSS | clusters | ambiguous | BCubed P / R / F | dense ref: split+join+amb."
        " / peak RSS / same |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in results:
        s = r["stages_s"]
        dense = "—"
        if "dense_stages_s" in r:
            d = r["dense_stages_s"]
            dense = (
                f"{d['cannot_link']:.2f}+{d['join']:.2f}+{d['ambiguity']:.2f} s / "
                f"{r['dense_peak_rss_mb']:.0f} MB / {'yes' if r['same_as_dense'] else 'NO'}"
            )
        p, rc, f = r["bcubed"]
        lines.append(
            f"| {r['n']:,} | {r['identities']:,} | {r['edges']:,} | {s['knn_graph']:.2f} s |"
            f" {s['whispers']:.2f} s | {s['cannot_link']:.2f} s | {s['join']:.2f} s |"
            f" {s['ambiguity']:.2f} s | {r['total_s']:.1f} s | {r['peak_rss_mb']:.0f} MB |"
            f" {r['clusters']:,} | {r['ambiguous']:,} | {p:.3f} / {rc:.3f} / {f:.3f} | {dense} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--fmr", type=float, default=1e-5)
    ap.add_argument("--dense", default="1000,10000", help="sizes that also run the dense path")
    ap.add_argument("--check", default="1000,10000", help="sizes also run through cluster_faces")
    ap.add_argument("--fit", action="store_true", help="print the match to the card first")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    dense = {int(s) for s in args.dense.split(",") if s}
    check = {int(s) for s in args.check.split(",") if s}
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.fmr, args.one in dense, args.one in check)))
        return
    report: dict[str, Any] = {}
    if args.fit:
        report["fit"] = fit_report()
        print(json.dumps(report["fit"], indent=1), flush=True)
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n), "--fmr", str(args.fmr)]
        cmd += ["--dense", args.dense, "--check", args.check]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    report["results"] = results
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
