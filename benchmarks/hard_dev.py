"""A harder dev benchmark (issue #27): degraded probes, bystanders, confidence intervals.

The held-out benchmark of issue #27 (press photos, 250×250 crops centred on the subject, often
with bystanders) found the dev protocols far too kind. This builds a harder one from
``../shared/data`` (``_hard_data.py``, fixed seeds, written to ``benchmarks/.data/hard/``,
outside git) and measures, in one run and on the same images, faceledger's face selection
policies (``largest``, the default, ``central``, ``primary``) each with and without flip-averaged
templates, against ``face_recognition``'s own pipeline (``_fr_reference.py`` in its own
environment, 2 processes: HOG with one upsampling, first face, Euclidean distance).

Images. References (enrolled, as they are): London neutral, ORL image 1, the first image of
each johns / deepface / fr_examples person, UTKFace adults (every image its own person, known
repeats and children left out). Probes: London smiling ×5 variants (the first always with
bystanders), ORL images 2–10 (30 % as they are: across expressions), johns and deepface and
fr_examples images as they are and degraded (deepface/fr also as bystander crops), 150 UTKFace
adults. Each degraded probe has one or two kinds (60/40 %): ``down`` (inter-eye distance
30–60 px, half of them scaled back up), ``blur`` (Gaussian, σ = 3–7 % of the inter-eye
distance), ``jpeg`` (quality 20–40), ``grey``, ``bystanders`` (``_composites.compose``: a
250×250 crop centred on the subject with 1–2 London faces of other people pasted beside it,
0.55–1.5× the subject's size). ``images.csv`` records each probe's kinds and parameters.

1:1 (``pairs.csv``, LFW-style, ``pairs_meta.csv`` beside it): 10 folds of 150 genuine + 150
impostor pairs, people disjoint between folds, always reference vs probe. Genuine: London,
ORL (also ORL image i vs j: expressions) and the web sets (johns, deepface incl. its photo
pairs, fr). Impostors mostly same sex / same source (London same sex, ORL, UTKFace same gender
and race, London–UTKFace same sex, web vs web/London same sex). Reported: 10-fold accuracy
(threshold chosen on 9 folds) ± fold SD with a 95 % bootstrap CI over the 10 folds and the
difference to face_recognition (paired: the same fold draws), EER, FNMR at FMR 1e-2 / 1e-3
(1,500 impostors: 1e-3 rests on one false match), the FMR and FNMR at the model card's
declared FMR-1e-3 threshold (what ``decide()`` applies), and FNMR by degradation kind at each
config's own FMR-1e-2 threshold.

1:N (``gallery.csv``, ``probes.csv``): 80 London, 30 ORL, all johns / deepface / fr people and
513 UTKFace distractors enrolled; mated probes are the enrolled people's probes, non-mated
ones the 22 London and 10 ORL people left out plus 150 UTKFace adults, and every mated probe is
searched again with its subject out of the gallery (mate-removed: out of the candidates and of
the AS-norm statistics, ``openset.mate_removed``'s rule) so that FPIR 0.01 rests on ~20 false
positives. Searched with ``GallerySearch`` (the ranking ``faceledger search`` uses, default
settings: AS-norm). Reported: rank-1, FNIR at FPIR 0.1 and 0.01 (thresholds measured on the
non-mated + mate-removed searches), 95 % bootstrap CIs resampling probes (mated probe together
with its mate-removed search; non-mated probes apart), faceledger's FNIR over
face_recognition's at FPIR 0.01 (paired bootstrap), and at the thresholds faceledger declares
for FPIR 0.1 and 0.01 (``GallerySearch.declare``) the measured FPIR on the non-mated searches
(n) and with the mate-removed ones (n*) and the FNIR; for face_recognition its tolerance 0.6.

Then the old dev protocol (``protocols/openset_dev_*``, default config only, same figures) and
deepface's ``pairs.csv`` 10-fold accuracy (the old 1:1 dev figure), for comparison.

Images are detected once and each policy's face embedded plain and mirrored
(``_hard_data.face_records``, checked equal to ``embed_paths`` with each setting); templates
and face_recognition encodings are cached by image sha256 under ``--cache-dir``.

    .venv/bin/python benchmarks/hard_dev.py [--configs largest,largest+flip,...] [--no-fr]
        [--data ../shared/data] [--out benchmarks/.data/hard] [--json hard.json]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from faceledger import Settings
from faceledger.evaluate.identify import evaluate_identify
from faceledger.evaluate.metrics import (
    NotMeasurable,
    equal_error_rate,
    error_curve,
    fnmr_at_fmr,
    kfold_accuracy,
)
from faceledger.evaluate.openset import IdentOperatingPoint, ProbeSearch, fnir_at_fpir
from faceledger.evaluate.protocols import ImageList, PairsProtocol, read_image_list, read_pairs
from faceledger.evaluate.templates import ImageTemplates
from faceledger.gallery.evaluation import GallerySearch
from faceledger.match.verify import require_calibration
from faceledger.models import ModelCard, ModelRegistry
from faceledger.models.registry import FLIP_SUFFIX

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _hard_data import KINDS, POLICIES, ImageRec, face_records, generate  # noqa: E402

FArr = npt.NDArray[np.float64]
FR_TOLERANCE = 0.6
DECLARED_FMR = 1e-3
FPIRS = (0.1, 0.01)
ALL_CONFIGS = tuple(f"{p}{f}" for p in POLICIES for f in ("", "+flip"))


# ---------------------------------------------------------------------------- templates


def config_templates(name: str, recs: dict[Path, ImageRec], model_id: str) -> ImageTemplates:
    policy, _, flip = name.partition("+")
    vectors, errors, quality = {}, {}, {}
    for p, r in recs.items():
        f = r.face(policy)
        if f is None:
            errors[p] = r.error or "no_face"
        else:
            vectors[p] = f.flip if flip else f.plain
            quality[p] = f.quality
    return ImageTemplates(model_id, vectors, errors, quality)


def _sha(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def fr_encodings(
    paths: Sequence[Path], fr_python: Path, procs: int, cache: Path
) -> dict[Path, npt.NDArray[np.float64] | None]:
    """face_recognition's first encoding per image (None: no face), cached by image sha256."""
    file = cache / "fr-encodings-by-sha.json"
    known: dict[str, list[float] | None] = json.loads(file.read_text()) if file.exists() else {}
    shas = {p: _sha(p) for p in paths}
    todo = sorted({str(p) for p in paths if shas[p] not in known})
    if todo:
        print(f"  face_recognition on {len(todo)} images ({procs} processes)...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            jobs = []
            for i in range(procs):
                (Path(tmp) / f"in{i}.json").write_text(json.dumps(todo[i::procs]))
                cmd = [str(fr_python), str(HERE / "_fr_reference.py")]
                jobs.append(subprocess.Popen([*cmd, f"{tmp}/in{i}.json", f"{tmp}/out{i}.json"]))
            if any(j.wait() != 0 for j in jobs):
                raise SystemExit("the face_recognition reference failed")
            for i in range(procs):
                enc = json.loads((Path(tmp) / f"out{i}.json").read_text())["encodings"]
                known |= {shas[Path(p)]: v for p, v in enc.items()}
        cache.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(known))
    return {p: None if known[shas[p]] is None else np.asarray(known[shas[p]]) for p in paths}


def config_card(name: str) -> ModelCard:
    """The model card a config's templates belong to: flip-averaged templates have their own
    card (``dlib-resnet-v1-flip``, own calibration)."""
    base = Settings().model_id.removesuffix(FLIP_SUFFIX)
    return ModelRegistry().resolve(base, name.endswith("+flip"))


def default_config() -> str:
    s = Settings()
    flip = ModelRegistry().resolve(s.model_id, s.flip_average).flip_average
    return f"{s.face_selection}{'+flip' if flip else ''}"


# ---------------------------------------------------------------------------- 1:1

Scorer = Callable[[Path, Path], float]


def pair_scores(protocol: PairsProtocol, score: Scorer) -> tuple[FArr, npt.NDArray[np.bool_]]:
    s = np.array([score(p.a, p.b) for p in protocol.pairs], dtype=np.float64)
    return s, np.array([p.same for p in protocol.pairs], dtype=bool)


def cosine_scorer(tm: ImageTemplates) -> Scorer:
    def score(a: Path, b: Path) -> float:
        va, vb = tm.vectors.get(a), tm.vectors.get(b)
        return -math.inf if va is None or vb is None else float(np.dot(va, vb))

    return score


def fr_scorer(enc: dict[Path, npt.NDArray[np.float64] | None]) -> Scorer:
    def score(a: Path, b: Path) -> float:
        va, vb = enc[a], enc[b]
        return -math.inf if va is None or vb is None else -float(np.linalg.norm(va - vb))

    return score


def common_subset(scores: dict[str, FArr], same: npt.NDArray[np.bool_]) -> None:
    """EER and FNMR at FMR 1e-2 on the pairs every pipeline could score (both templates):
    recognition alone, without the detector's failures."""
    ok = np.logical_and.reduce([np.isfinite(s) for s in scores.values()])
    print(
        f"\n  on the {ok.sum()} pairs ({(ok & same).sum()} genuine) where every pipeline has both "
        "templates: EER / FNMR@FMR1e-2"
    )
    for name, s in scores.items():
        g, i = s[ok & same], s[ok & ~same]
        eer = equal_error_rate(error_curve(g, i))
        op = fnmr_at_fmr(g, i, (1e-2,))[1e-2]
        fn = "n/m" if isinstance(op, NotMeasurable) else f3(op.fnmr)
        print(f"  {name:<20}{eer.value if eer else math.nan:.3f} / {fn}")


@dataclasses.dataclass
class Verif:
    fold_acc: FArr
    fnmr: dict[float, tuple[float, float] | None]
    """target FMR → (FNMR, threshold), None if not measurable."""
    eer: float
    declared: tuple[float, float, float] | None
    """(threshold, measured FMR, FNMR) at the declared FMR-1e-3 threshold (FR: tolerance)."""
    by_kind: dict[str, tuple[int, int]]
    """degradation kind → (misses, genuine pairs) at the FMR-1e-2 threshold."""
    failed: int


def verification(
    scores: FArr,
    same: npt.NDArray[np.bool_],
    probe_kinds: Sequence[str],
    declared: float | None,
) -> Verif:
    g, i = scores[same], scores[~same]
    kf = kfold_accuracy(scores, same, 10)
    eer = equal_error_rate(error_curve(g, i))
    ops = fnmr_at_fmr(g, i, (1e-2, 1e-3))
    fnmr: dict[float, tuple[float, float] | None] = {}
    for t, op in ops.items():
        fnmr[t] = None if isinstance(op, NotMeasurable) else (op.fnmr or 0.0, op.threshold)
    by_kind: dict[str, tuple[int, int]] = {}
    at = fnmr[1e-2]
    if at is not None:
        kinds = [k for k, s in zip(probe_kinds, same, strict=True) if s]
        for kind in ("none", *KINDS):
            sel = [
                j
                for j, k in enumerate(kinds)
                if (k == "none" if kind == "none" else kind in k.split("+"))
            ]
            by_kind[kind] = (int(np.count_nonzero(g[sel] < at[1])), len(sel))
    dec = None
    if declared is not None:
        dec = (declared, float(np.mean(i >= declared)), float(np.mean(g < declared)))
    return Verif(
        np.array([f.accuracy for f in kf.folds]),
        fnmr,
        eer.value if eer else math.nan,
        dec,
        by_kind,
        int(np.count_nonzero(~np.isfinite(scores))),
    )


def fold_boot(acc: FArr, ref: FArr | None, rng: np.random.Generator, n: int) -> dict[str, Any]:
    """Bootstrap over the folds: CI of the mean accuracy and of the paired difference."""
    draws = rng.integers(0, len(acc), size=(n, len(acc)))
    means = acc[draws].mean(axis=1)
    out: dict[str, Any] = {"ci": tuple(np.percentile(means, [2.5, 97.5]))}
    if ref is not None:
        diff = (acc - ref)[draws].mean(axis=1)
        out["diff"] = float(np.mean(acc - ref))
        out["diff_ci"] = tuple(np.percentile(diff, [2.5, 97.5]))
    return out


# ---------------------------------------------------------------------------- 1:N


@dataclasses.dataclass
class Ident:
    mated: FArr
    """Per mated probe: the mate's score when it is at rank 1, else -inf."""
    removed: FArr
    """Per mated probe: top score of its mate-removed search (-inf: no candidates)."""
    nonmated: FArr
    """Per non-mated probe: top score."""
    failed: int
    declared: dict[float, float]
    """target FPIR → threshold (faceledger: declared by the search; FR: its tolerance)."""
    sources: list[str]
    """Per mated probe: its source (London, ORL, ...)."""


def rank1_scores(searches: Sequence[ProbeSearch]) -> FArr:
    out = [
        (s.mate_score if s.mate_rank == 1 and s.mate_score is not None else -math.inf)
        for s in searches
    ]
    return np.asarray(out, dtype=np.float64)


def tops(searches: Sequence[ProbeSearch]) -> FArr:
    return np.asarray([s.top_score for s in searches], dtype=np.float64)


def faceledger_ident(
    settings: Settings, model_id: str, gallery: ImageList, probes: ImageList, tm: ImageTemplates
) -> tuple[Ident, list[ProbeSearch]]:
    search = GallerySearch(settings, model_id)
    ev = evaluate_identify(gallery, probes, tm, search=search, declare=search.declare)
    declared = {f: ev.declared[f].declared.threshold for f in FPIRS if f in ev.declared}
    # mate-removed: each mated probe with a template searched with its subject out of the
    # gallery (candidates and normalisation statistics); a probe without one returns nothing
    gal = [e for e in gallery.entries if tm.vectors.get(e.image) is not None]
    mated_idx = [k for k, s in enumerate(ev.searches) if s.mated]
    with_t = [k for k in mated_idx if tm.vectors.get(probes.entries[k].image) is not None]
    lists = GallerySearch(settings, model_id)(
        np.stack([np.asarray(tm.vectors[e.image], np.float32) for e in gal]),
        [e.subject for e in gal],
        np.stack([np.asarray(tm.vectors[probes.entries[k].image], np.float32) for k in with_t]),
        20,
        gallery_quality=[tm.quality.get(e.image) for e in gal],
        leave_out=[probes.entries[k].subject for k in with_t],
    )
    removed = dict.fromkeys(mated_idx, -math.inf)
    for k, c in zip(with_t, lists, strict=True):
        removed[k] = max((s for _, s in c), default=-math.inf)
    mated = [ev.searches[k] for k in mated_idx]
    lib = fnir_at_fpir(ev.searches, (0.01,))[0.01]
    mine = fnir_at(rank1_scores(mated), tops([s for s in ev.searches if not s.mated]), 0.01)
    if isinstance(lib, IdentOperatingPoint) and abs((lib.fnir or 0.0) - mine) > 1e-9:
        print(f"  warning: FNIR@0.01 {mine:.4f} here, {lib.fnir:.4f} by fnir_at_fpir")
    ident = Ident(
        rank1_scores(mated),
        np.array([removed[k] for k in mated_idx]),
        tops([s for s in ev.searches if not s.mated]),
        sum(ev.probe_failed),
        declared,
        [probes.entries[k].group for k in mated_idx],
    )
    return ident, list(ev.searches)


def fr_ident(
    gallery: ImageList, probes: ImageList, enc: dict[Path, npt.NDArray[np.float64] | None]
) -> Ident:
    kept = [(e.subject, enc[e.image]) for e in gallery.entries if enc[e.image] is not None]
    names = [s for s, _ in kept]
    mat = np.stack([v for _, v in kept if v is not None])
    enrolled = {e.subject for e in gallery.entries}
    searches = []
    for e in probes.entries:
        v = enc[e.image]
        cands: tuple[tuple[str, float], ...] = ()
        if v is not None:
            d = np.linalg.norm(mat - v, axis=1)
            best: dict[str, float] = {}
            for name, dist in zip(names, d, strict=True):
                best[name] = max(best.get(name, -math.inf), -float(dist))
            cands = tuple(sorted(best.items(), key=lambda c: -c[1])[:20])
        searches.append(ProbeSearch(e.subject, e.subject in enrolled, cands, e.group))
    mated = [s for s in searches if s.mated]
    removed = [
        max((x for n, x in s.candidates if n != s.subject), default=-math.inf) for s in mated
    ]
    return Ident(
        rank1_scores(mated),
        np.asarray(removed, dtype=np.float64),
        tops([s for s in searches if not s.mated]),
        sum(1 for e in probes.entries if enc[e.image] is None),
        dict.fromkeys(FPIRS, -FR_TOLERANCE),
        [s.group for s in mated],
    )


def fnir_at(mated: FArr, nonmated: FArr, target: float) -> float:
    """FNIR at the lowest threshold whose FPIR <= target (``threshold_at_fpir``'s rule): a mate
    is missed when its rank-1 score is at or below the (k+1)-th highest non-mated score."""
    k = math.floor(target * len(nonmated) + 1e-9)
    cut = np.partition(-nonmated, k)[k] * -1
    return float(np.mean(mated <= cut))


def ident_figures(x: Ident) -> dict[str, float]:
    nm_star = np.concatenate([x.nonmated, x.removed])
    out = {"rank1": float(np.mean(np.isfinite(x.mated)))}
    for f in FPIRS:
        out[f"fnir@{f}"] = fnir_at(x.mated, nm_star, f)
        out[f"fnir@{f} n"] = fnir_at(x.mated, x.nonmated, f)
    for f, t in x.declared.items():
        out[f"decl{f} fpir n"] = float(np.mean(x.nonmated >= t))
        out[f"decl{f} fpir n*"] = float(np.mean(nm_star >= t))
        out[f"decl{f} fnir"] = float(np.mean(x.mated < t))
    return out


def ident_boot(
    x: Ident, ref: Ident | None, rng: np.random.Generator, n: int
) -> dict[str, tuple[float, float]]:
    """95 % CIs resampling probes (a mated probe with its mate-removed search; non-mated apart);
    with ``ref`` (the same probes, another system) also the CI of the FNIR ratio at 0.01."""
    m, nn = len(x.mated), len(x.nonmated)
    stats: dict[str, list[float]] = {"rank1": [], "fnir@0.1": [], "fnir@0.01": [], "ratio": []}
    for _ in range(n):
        im, inn = rng.integers(0, m, m), rng.integers(0, nn, nn)
        stats["rank1"].append(float(np.mean(np.isfinite(x.mated[im]))))
        for f in FPIRS:
            nm = np.concatenate([x.nonmated[inn], x.removed[im]])
            stats[f"fnir@{f}"].append(fnir_at(x.mated[im], nm, f))
        if ref is not None:
            nm_ref = np.concatenate([ref.nonmated[inn], ref.removed[im]])
            r = fnir_at(ref.mated[im], nm_ref, 0.01)
            stats["ratio"].append(stats["fnir@0.01"][-1] / r if r > 0 else math.nan)
    out = {}
    for k, v in stats.items():
        if v:
            lo, hi = np.nanpercentile(v, [2.5, 97.5])
            out[k] = (float(lo), float(hi))
    return out


def paired_delta(
    a: Ident, b: Ident, rng: np.random.Generator, n: int
) -> dict[str, tuple[float, float, float]]:
    """``a`` minus ``b`` on the same probes (e.g. flip minus plain): the difference of rank-1
    and of FNIR at each FPIR, with a 95 % CI from resampling probes once for both systems
    (paired, so far tighter than comparing two unpaired intervals)."""
    m, nn = len(a.mated), len(a.nonmated)

    def figs(x: Ident, im: npt.NDArray[np.int64], inn: npt.NDArray[np.int64]) -> list[float]:
        nm = np.concatenate([x.nonmated[inn], x.removed[im]])
        return [float(np.mean(np.isfinite(x.mated[im])))] + [
            fnir_at(x.mated[im], nm, f) for f in FPIRS
        ]

    keys = ["rank1"] + [f"fnir@{f}" for f in FPIRS]
    every_m, every_n = np.arange(m), np.arange(nn)
    point = np.subtract(figs(a, every_m, every_n), figs(b, every_m, every_n))
    draws = []
    for _ in range(n):
        im, inn = rng.integers(0, m, m), rng.integers(0, nn, nn)
        draws.append(np.subtract(figs(a, im, inn), figs(b, im, inn)))
    lo, hi = np.percentile(np.asarray(draws), [2.5, 97.5], axis=0)
    return {k: (float(point[i]), float(lo[i]), float(hi[i])) for i, k in enumerate(keys)}


# ---------------------------------------------------------------------------- printing


def f3(x: float | None) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def ci(c: Sequence[float] | None) -> str:
    return "" if c is None else f"({c[0]:.3f}–{c[1]:.3f})"


def print_verif(title: str, rows: dict[str, tuple[Verif, dict[str, Any]]], n_pairs: str) -> None:
    print(f"\n{title} ({n_pairs})")
    print(
        f"{'config':<20}{'no tmpl':>8} {'10-fold acc ± SD':<17}{'95% CI (folds)':<15}"
        f"{'Δ vs FR (95% CI)':<25}{'EER':>6}{'FNMR@1e-2':>10}{'FNMR@1e-3':>10}"
        f"  at declared FMR 1e-3: FMR / FNMR"
    )
    for name, (v, b) in rows.items():
        diff = ""
        if "diff" in b:
            lo, hi = b["diff_ci"]
            diff = f"{b['diff'] * 100:+.2f} pt ({lo * 100:+.2f}…{hi * 100:+.2f})"
        fn = {t: f3(o[0]) if o else "n/m" for t, o in v.fnmr.items()}
        dec = "–"
        if v.declared:
            dec = f"{v.declared[1]:.4f} / {v.declared[2]:.3f} (t={v.declared[0]:.3f})"
        print(
            f"{name:<20}{v.failed:>8} {v.fold_acc.mean():.4f} ± {v.fold_acc.std(ddof=1):.4f}  "
            f"{ci(b['ci']):<15}{diff:<25}{v.eer:>6.3f}{fn[1e-2]:>10}{fn[1e-3]:>10}  {dec}"
        )


def print_kinds(rows: dict[str, tuple[Verif, dict[str, Any]]]) -> None:
    names = list(rows)
    print("\nFNMR by probe degradation at each config's own FMR-1e-2 threshold (genuine pairs)")
    first = next(iter(rows.values()))[0]
    print(f"{'kind':<12}{'pairs':>6}" + "".join(f"{n:>17}" for n in names))
    for kind, (_, total) in first.by_kind.items():
        line = f"{kind:<12}{total:>6}"
        for n in names:
            misses, t = rows[n][0].by_kind.get(kind, (0, 0))
            line += f"{misses / t if t else math.nan:>17.3f}"
        print(line)


def print_ident(
    title: str, rows: dict[str, tuple[Ident, dict[str, float], dict[str, Any]]], counts: str
) -> None:
    print(f"\n{title}: {counts}")
    print(
        f"{'config':<20}{'no tmpl':>8}{'rank-1 (95% CI)':>22}{'FNIR@FPIR.1 (CI)':>24}"
        f"{'FNIR@FPIR.01 (CI)':>24}{'÷FR @.01 (CI)':>21}{'n only':>8}"
        "  | declared .1: FPIR n / n*, FNIR | declared .01: FPIR n / n*, FNIR"
    )
    for name, (x, fig, b) in rows.items():
        ratio = ""
        if "ratio" in fig:
            ratio = f"{fig['ratio']:.2f} ({b['ratio'][0]:.2f}–{b['ratio'][1]:.2f})"
        decl = ""
        for f in FPIRS:
            if f"decl{f} fnir" in fig:
                decl += (
                    f" | {fig[f'decl{f} fpir n']:.3f} / {fig[f'decl{f} fpir n*']:.3f}, "
                    f"{fig[f'decl{f} fnir']:.3f}"
                )
        print(
            f"{name:<20}{x.failed:>8}{fig['rank1']:>7.3f} {ci(b.get('rank1')):<14}"
            f"{fig['fnir@0.1']:>9.3f} {ci(b.get('fnir@0.1')):<14}"
            f"{fig['fnir@0.01']:>9.3f} {ci(b.get('fnir@0.01')):<14}{ratio:>21}"
            f"{fig['fnir@0.01 n']:>8.3f}{decl}"
        )


# ---------------------------------------------------------------------------- main


def read_kinds(out: Path) -> dict[Path, str]:
    with (out / "images.csv").open() as fh:
        return {(out / r["image"]).resolve(): r["kind"] for r in csv.DictReader(fh)}


def run_ident(
    names: Sequence[str],
    templates: dict[str, ImageTemplates],
    gallery: ImageList,
    probes: ImageList,
    enc: dict[Path, npt.NDArray[np.float64] | None] | None,
    boot: int,
    model_id: str,
) -> dict[str, tuple[Ident, dict[str, float], dict[str, Any]]]:
    rows: dict[str, tuple[Ident, dict[str, float], dict[str, Any]]] = {}
    ref = fr_ident(gallery, probes, enc) if enc is not None else None
    for name in names:
        policy = name.partition("+")[0]
        model = templates[name].model_id
        settings = dataclasses.replace(Settings(), model_id=model)
        settings = dataclasses.replace(settings, face_selection=policy)  # type: ignore[arg-type]
        x, _ = faceledger_ident(
            settings, templates[name].model_id, gallery, probes, templates[name]
        )
        fig = ident_figures(x)
        b = ident_boot(x, ref, np.random.default_rng(1), boot)
        if ref is not None:
            r = fnir_at(ref.mated, np.concatenate([ref.nonmated, ref.removed]), 0.01)
            fig["ratio"] = fig["fnir@0.01"] / r if r > 0 else math.nan
        rows[name] = (x, fig, b)
    if ref is not None:
        rows["face_recognition"] = (
            ref,
            ident_figures(ref),
            ident_boot(ref, None, np.random.default_rng(1), boot),
        )
    return rows


def run_verif(
    names: Sequence[str],
    templates: dict[str, ImageTemplates],
    protocol: PairsProtocol,
    kinds: Sequence[str],
    enc: dict[Path, npt.NDArray[np.float64] | None] | None,
    declared: float,
    boot: int,
) -> tuple[dict[str, tuple[Verif, dict[str, Any]]], tuple[dict[str, FArr], npt.NDArray[np.bool_]]]:
    ref = None
    all_scores: dict[str, FArr] = {}
    if enc is not None:
        s, same = pair_scores(protocol, fr_scorer(enc))
        ref = verification(s, same, kinds, -FR_TOLERANCE)
        all_scores["face_recognition"] = s
    rows: dict[str, tuple[Verif, dict[str, Any]]] = {}
    for name in names:
        s, same = pair_scores(protocol, cosine_scorer(templates[name]))
        all_scores[name] = s
        card = ModelRegistry().get(templates[name].model_id)
        v = verification(s, same, kinds, require_calibration(card).threshold_for(declared))
        b = fold_boot(v.fold_acc, ref.fold_acc if ref else None, np.random.default_rng(2), boot)
        rows[name] = (v, b)
    if ref is not None:
        b = fold_boot(ref.fold_acc, None, np.random.default_rng(2), boot)
        rows["face_recognition"] = (ref, b)
    return rows, (all_scores, same)


def to_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, float | np.floating):
        return None if math.isnan(obj) or math.isinf(obj) else float(obj)
    return obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=HERE / ".data/hard", help="generated data")
    ap.add_argument("--protocols", type=Path, default=Path("protocols"), help="old dev protocol")
    ap.add_argument("--configs", default=",".join(ALL_CONFIGS), help=", ".join(ALL_CONFIGS))
    ap.add_argument("--no-fr", action="store_true", help="leave face_recognition out")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--fr-python", type=Path, default=HERE / ".venv-fr/bin/python")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap draws")
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "faceledger-bench"
    )
    args = ap.parse_args()
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    if bad := [c for c in names if c not in ALL_CONFIGS]:
        raise SystemExit(f"unknown config(s) {bad}; choose from {', '.join(ALL_CONFIGS)}")
    t0 = time.perf_counter()
    generate(args.data, args.out, args.cache_dir, args.workers)
    t_gen = time.perf_counter()
    model_id = Settings().model_id
    declared = DECLARED_FMR

    pairs = read_pairs(args.out / "pairs.csv")
    with (args.out / "pairs_meta.csv").open() as fh:
        meta = list(csv.DictReader(fh))
    pair_kinds = [r["probe_kind"] for r in meta]
    gallery = read_image_list(args.out / "gallery.csv")
    probes = read_image_list(args.out / "probes.csv")
    old_g = read_image_list(args.protocols / "openset_dev_gallery.csv")
    old_p = read_image_list(args.protocols / "openset_dev_probes.csv")
    old_pairs = read_pairs(args.data / "deepface/pairs.csv")
    lists = (gallery, probes, old_g, old_p)
    paths = {e.image for lst in lists for e in lst.entries}
    paths |= set(pairs.images()) | set(old_pairs.images())
    recs = face_records(sorted(paths), args.cache_dir, args.workers)
    t_emb = time.perf_counter()
    enc = None
    if not args.no_fr:
        enc = fr_encodings(sorted(paths), args.fr_python, 2, args.cache_dir)
    t_fr = time.perf_counter()
    cards = {n: config_card(n) for n in names}
    templates = {n: config_templates(n, recs, cards[n].id) for n in names}

    kinds = read_kinds(args.out)
    n_deg = sum(1 for e in probes.entries if kinds.get(e.image, "none") != "none")
    print(
        f"\nimages: {len(paths)} distinct ({len(set(pairs.images()))} in pairs, "
        f"{len(gallery.entries)} gallery, {len(probes.entries)} probes of which {n_deg} degraded)"
    )
    report: dict[str, Any] = {"configs": names}
    v_rows, v_scores = run_verif(names, templates, pairs, pair_kinds, enc, declared, args.boot)
    n_gen = sum(p.same for p in pairs.pairs)
    print_verif(
        "1:1 hard pairs",
        v_rows,
        f"{n_gen} genuine / {len(pairs.pairs) - n_gen} impostor pairs, 10 folds; "
        "declared: the threshold of each config's model card for FMR 1e-3 (t); "
        "FR: its tolerance 0.6",
    )
    if enc is not None:
        common_subset(*v_scores)
    print_kinds(v_rows)
    report["pairs"] = {n: {**dataclasses.asdict(v), **b} for n, (v, b) in v_rows.items()}

    i_rows = run_ident(names, templates, gallery, probes, enc, args.boot, model_id)
    x0 = next(iter(i_rows.values()))[0]
    print_ident(
        "1:N hard open-set",
        i_rows,
        f"{len(gallery.entries)} enrolled, {len(x0.mated)} mated, {len(x0.nonmated)} non-mated "
        f"probes + {len(x0.removed)} mate-removed searches "
        f"(n* = {len(x0.nonmated) + len(x0.removed)})",
    )
    for name, (x, _, _) in i_rows.items():
        by = {}
        for src in sorted(set(x.sources)):
            sel = np.array([s == src for s in x.sources])
            by[src] = f"{np.mean(np.isfinite(x.mated[sel])):.3f} ({sel.sum()})"
        print(f"  rank-1 by source, {name}: " + ", ".join(f"{k} {v}" for k, v in by.items()))
    report["openset"] = {
        n: {"figures": f, "ci": b, "declared": x.declared} for n, (x, f, b) in i_rows.items()
    }
    report["flip_paired"] = {}
    for name in names:
        if "+" in name or f"{name}+flip" not in i_rows:
            continue
        d = paired_delta(
            i_rows[f"{name}+flip"][0], i_rows[name][0], np.random.default_rng(2), args.boot
        )
        report["flip_paired"][name] = d
        print(
            f"  {name}+flip minus {name}, same probes (paired 95 % CI): "
            + ", ".join(f"{k} {v[0]:+.3f} ({v[1]:+.3f}…{v[2]:+.3f})" for k, v in d.items())
        )

    # the default before issue #27 (largest, no flip) and today's default if it differs
    old = [n for n in dict.fromkeys(["largest", default_config()]) if n in names] or names[:1]
    print(f"\ndefault config of the installed code: {default_config()}")
    o_rows = run_ident(old, templates, old_g, old_p, enc, args.boot, model_id)
    x0 = next(iter(o_rows.values()))[0]
    print_ident(
        "1:N OLD dev protocol (protocols/openset_dev_*)",
        o_rows,
        f"{len(old_g.entries)} enrolled, {len(x0.mated)} mated, {len(x0.nonmated)} non-mated "
        f"probes + {len(x0.removed)} mate-removed",
    )
    none = ["none"] * len(old_pairs.pairs)
    ov_rows, _ = run_verif(old, templates, old_pairs, none, enc, declared, args.boot)
    n_gen = sum(p.same for p in old_pairs.pairs)
    print_verif(
        "1:1 OLD dev figure: deepface/pairs.csv",
        ov_rows,
        f"{n_gen} genuine / {len(old_pairs.pairs) - n_gen} impostor pairs",
    )
    report["old_openset"] = {n: {"figures": f, "ci": b} for n, (_, f, b) in o_rows.items()}
    report["old_pairs"] = {n: {**dataclasses.asdict(v), **b} for n, (v, b) in ov_rows.items()}
    t_end = time.perf_counter()
    print(
        f"\ntime: generate {t_gen - t0:.0f} s, faceledger detect+embed {t_emb - t_gen:.0f} s, "
        f"face_recognition {t_fr - t_emb:.0f} s, evaluation {t_end - t_fr:.0f} s, "
        f"total {t_end - t0:.0f} s"
    )
    report["seconds"] = {
        "generate": t_gen - t0,
        "embed": t_emb - t_gen,
        "fr": t_fr - t_emb,
        "eval": t_end - t_fr,
    }
    if args.json:
        args.json.write_text(json.dumps(to_json(report), indent=1))


if __name__ == "__main__":
    main()
