"""The hard dev protocol (``hard_dev.py``), default face selection, with search and template
variants (issue #27, items 3 and 4): AS-norm on vs off, the per-subject aggregations, and
dlib's jitter beside flip-averaged templates, each against the default with paired CIs.

Reuses ``hard_dev.py``'s data (``_hard_data.generate``, the same images, pairs, gallery and
probes), its detect-once templates (``_hard_data.face_records``, cached) and its figures
(10-fold 1:1 accuracy, FNIR at FPIR 0.1 / 0.01 on the non-mated + mate-removed searches,
bootstraps). Every row is compared with the default config (``primary``, plain templates,
``normalisation = "asnorm"``, ``aggregation = "max"``) **paired**: 1:1 on the same 10 folds
(bootstrap over folds), 1:N on the same probes (``hard_dev.paired_delta``: a mated probe with
its mate-removed search, non-mated probes apart, one draw for both systems).

Rows:

- ``asnorm`` (default) / ``none``: ``Settings.normalisation``; the threshold declared for a
  target FPIR comes from the gallery's own count or the card's open-set calibration (asnorm), or
  from the card's 1:1 table (none), as ``search`` does.
- Aggregation (``Settings.aggregation``: ``max``, ``fused``, ``quality``): the hard gallery holds
  **one** template per subject, where the three are the same score by construction (the mean
  of one template is that template), so they are measured on ``multi``: the same protocol with
  each enrolled ORL person's images 2 and 3 and each enrolled web person's (johns, deepface,
  fr) second image enrolled too (as they are, the originals), and every probe made from an
  enrolled image left out. London (one neutral image each) and UTKFace stay single.
- ``flip``: flip-averaged templates, the ``dlib-resnet-v1-flip`` card (own calibration).
- ``jitter``: ``Settings.jitter = J`` (default 10) reaches dlib's
  ``compute_face_descriptor(chips, J)`` (``DlibEmbedder``; the runtime is then dlib's, as
  ``embed.runtime`` chooses), with the plain card and its calibration, as the engine would.
  The chips are those of the cached records: each image decoded again, the landmarks predicted
  in the record's box (``detect.base`` does the same after detection), aligned, and the plain
  onnxruntime template checked equal to the cached one (cosine reported). dlib draws the jitter
  from a generator owned by the network object, so a fresh network per image makes every
  template independent of order and workers (reproducible). Cached by image sha256.

Cost per face (same run, one process, one thread for onnxruntime, on a fixed sample of chips):
the descriptor alone, plain and flip (chip + mirror in one batch) on onnxruntime, and dlib's
runtime at 0 and J jitters.

    .venv/bin/python benchmarks/hard_dev_variants.py [--jitter 10] [--jitter-sample N]
        [--boot 1000] [--json variants.json]

``--jitter-sample N`` measures the jitter row on a subsample: the full gallery and the first N
other images (probes, pair images) of a fixed permutation (seed 27); 1:1 then keeps the pairs
whose two images have templates (or neither has a face), 1:N the probes that do, and every row
of those two tables (the default's included) is measured on that subset, so the differences
stay paired; ``multi`` is never subsampled.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import multiprocessing
import pickle
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from faceledger import Settings
from faceledger.align import align_face
from faceledger.align.aligner import mirror
from faceledger.batch import worker_engine
from faceledger.detect.landmarks import predict_landmarks
from faceledger.embed.base import l2_normalise
from faceledger.embed.dlib_resnet import DlibEmbedder
from faceledger.evaluate.protocols import ImageList, PairsProtocol, read_image_list, read_pairs
from faceledger.evaluate.templates import ImageTemplates
from faceledger.match.verify import require_calibration
from faceledger.models import ModelRegistry
from faceledger.pipeline import Engine
from faceledger.types import AlignedFace, Box, Detection

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _hard_data import ImageRec, face_records, generate  # noqa: E402
from hard_dev import (  # noqa: E402
    DECLARED_FMR,
    FPIRS,
    Ident,
    Verif,
    config_card,
    config_templates,
    cosine_scorer,
    faceledger_ident,
    fold_boot,
    ident_boot,
    ident_figures,
    pair_scores,
    paired_delta,
    to_json,
    verification,
)

FArr = npt.NDArray[np.float64]
Vec = npt.NDArray[np.float32]
SEED = 27
POLICY: Final = "primary"
JITTER_VERSION = "jitter-2"

# ---------------------------------------------------------------------------- jitter templates

_ENGINE: Engine | None = None


def _init(settings: Settings) -> None:
    global _ENGINE
    _ENGINE = worker_engine(settings)


def _chip(engine: Engine, path: str, box: tuple[float, float, float, float]) -> AlignedFace:
    """The aligned chip of the record's face: landmarks predicted in its box, as detection does."""
    img = engine.load(path)
    b = Box(*box)
    det = Detection(b, predict_landmarks(img.pixels, b), 1.0, 0.0, "record")
    return align_face(img.pixels, det, engine.card.align)


def _jitter_one(
    item: tuple[str, tuple[float, float, float, float], int],
) -> tuple[str, Vec, Vec, float]:
    """(path, jittered template, plain onnxruntime template, jitter ms) of one image."""
    engine = _ENGINE
    assert engine is not None
    path, box, jitter = item
    chip = _chip(engine, path, box)
    plain = l2_normalise(engine.embedder._raw([chip]))[0]
    net = DlibEmbedder(engine.card, jitter=jitter)  # fresh: its jitter generator starts anew
    t = time.perf_counter()
    jit = l2_normalise(net._raw([chip]))[0]
    return path, jit, plain, (time.perf_counter() - t) * 1000


def _sha(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclasses.dataclass(frozen=True)
class JitterRec:
    vector: Vec
    plain_cosine: float
    """Cosine of the recomputed plain template with the cached record's (chip check)."""
    ms: float


def jitter_templates(
    order: Sequence[Path],
    recs: dict[Path, ImageRec],
    jitter: int,
    cache_dir: Path,
    workers: int,
    limit: int | None = None,
) -> dict[Path, JitterRec]:
    """Jittered templates of ``order`` (images without a ``primary`` face skipped), the first
    ``limit`` of them with a face if given; cached by sha256, saved as they come."""
    file = cache_dir / f"hard-dev-{JITTER_VERSION}-j{jitter}.pkl"
    # plain tuples (vector, cosine, ms) on disk: readable whether this runs as a script or not
    stored: dict[str, tuple[Vec, float, float]] = (
        pickle.loads(file.read_bytes()) if file.exists() else {}
    )
    cached = {k: JitterRec(*v) for k, v in stored.items()}
    with_face = [p for p in order if recs[p].face(POLICY) is not None]
    if limit is not None:
        with_face = with_face[:limit]
    shas = {p: _sha(p) for p in with_face}
    todo = [p for p in with_face if shas[p] not in cached]
    if todo:
        print(f"  dlib jitter {jitter} on {len(todo)} images ({workers} workers)...", flush=True)
        items = []
        for p in todo:
            face = recs[p].face(POLICY)
            assert face is not None
            items.append((str(p), face.box, jitter))
        settings = dataclasses.replace(Settings(), face_selection=POLICY, flip_average=False)
        t0, done = time.perf_counter(), 0
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init,
            initargs=(settings,),
        ) as pool:
            for path, vec, plain, ms in pool.map(_jitter_one, items, chunksize=4):
                p = Path(path)
                face = recs[p].face(POLICY)
                assert face is not None
                cos = float(np.dot(plain, face.plain))
                cached[shas[p]] = JitterRec(vec, cos, ms)
                done += 1
                if done % 100 == 0 or done == len(items):
                    tmp = file.with_suffix(".tmp")
                    rows = {k: (r.vector, r.plain_cosine, r.ms) for k, r in cached.items()}
                    tmp.write_bytes(pickle.dumps(rows))
                    tmp.replace(file)
                    rate = done / (time.perf_counter() - t0)
                    print(f"    {done}/{len(items)} ({rate:.2f} images/s)", flush=True)
    return {p: cached[shas[p]] for p in with_face}


def jitter_order(gallery: ImageList, others: Sequence[Path]) -> list[Path]:
    """The gallery first (a search needs all of it), then the other images in a fixed
    permutation (seed 27): any prefix is a seeded random subsample."""
    g = sorted({e.image for e in gallery.entries})
    rest = sorted(set(others) - set(g))
    random.Random(SEED).shuffle(rest)
    return g + rest


# ---------------------------------------------------------------------------- protocols


def multi_protocol(out: Path, gallery: ImageList, probes: ImageList) -> tuple[ImageList, ImageList]:
    """``multi``: each enrolled ORL person's images 2 and 3 and each enrolled web person's second
    image (the originals) enrolled beside the reference; the probes made from them left out."""
    with (out / "images.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    origins: dict[str, list[Path]] = defaultdict(list)
    origin_of: dict[Path, Path] = {}
    for r in rows:
        o = (out / r["origin"]).resolve()
        origin_of[(out / r["image"]).resolve()] = o
        if r["enrolled"] == "1" and o not in origins[r["subject"]]:
            origins[r["subject"]].append(o)
    group = {e.subject: e.group for e in gallery.entries}
    added: list[tuple[Path, str]] = []
    for subject, os_ in origins.items():
        src = group.get(subject, "")
        take = 2 if src == "orl" else 1 if src in ("johns", "deepface", "fr") else 0
        added += [(o, subject) for o in os_[:take]]  # ORL 2, 3: the order of images.csv
    enrolled = {o for o, _ in added}
    extra = tuple(
        dataclasses.replace(gallery.entries[0], image=o, subject=s, group=group[s], line=0)
        for o, s in added
    )
    kept = tuple(e for e in probes.entries if origin_of.get(e.image.resolve()) not in enrolled)
    return (
        dataclasses.replace(gallery, entries=gallery.entries + extra),
        dataclasses.replace(probes, entries=kept),
    )


def pairs_subset(
    pairs: PairsProtocol, kinds: Sequence[str], ok: set[Path]
) -> tuple[PairsProtocol, list[str]]:
    keep = [i for i, p in enumerate(pairs.pairs) if p.a in ok and p.b in ok]
    sub = dataclasses.replace(pairs, pairs=tuple(pairs.pairs[i] for i in keep))
    return sub, [kinds[i] for i in keep]


def probes_subset(probes: ImageList, ok: set[Path]) -> ImageList:
    return dataclasses.replace(probes, entries=tuple(e for e in probes.entries if e.image in ok))


# ---------------------------------------------------------------------------- figures


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    templates: ImageTemplates
    normalisation: str = "asnorm"
    aggregation: str = "max"

    def settings(self) -> Settings:
        s = dataclasses.replace(Settings(), face_selection=POLICY, model_id=self.templates.model_id)
        return dataclasses.replace(
            s,
            normalisation=self.normalisation,  # type: ignore[arg-type]
            aggregation=self.aggregation,  # type: ignore[arg-type]
        )


def one_to_one(
    variants: Sequence[Variant], pairs: PairsProtocol, kinds: Sequence[str], boot: int
) -> dict[str, dict[str, Any]]:
    """10-fold accuracy etc. of each variant's templates; the first is the reference of the
    paired differences (bootstrap over the 10 folds, the same draws for both)."""
    out: dict[str, dict[str, Any]] = {}
    ref: Verif | None = None
    for v in variants:
        s, same = pair_scores(pairs, cosine_scorer(v.templates))
        card = ModelRegistry().get(v.templates.model_id)
        ver = verification(s, same, kinds, require_calibration(card).threshold_for(DECLARED_FMR))
        b = fold_boot(
            ver.fold_acc, None if ref is None else ref.fold_acc, np.random.default_rng(2), boot
        )
        ref = ref or ver
        out[v.name] = {"verif": ver, **b}
    return out


def one_to_n(
    variants: Sequence[Variant], gallery: ImageList, probes: ImageList, boot: int
) -> dict[str, dict[str, Any]]:
    """FNIR at FPIR 0.1 / 0.01 etc. of each variant; paired differences to the first."""
    out: dict[str, dict[str, Any]] = {}
    ref: Ident | None = None
    for v in variants:
        t = time.perf_counter()
        x, _ = faceledger_ident(v.settings(), v.templates.model_id, gallery, probes, v.templates)
        row: dict[str, Any] = {
            "ident": x,
            "figures": ident_figures(x),
            "ci": ident_boot(x, None, np.random.default_rng(1), boot),
            "seconds": time.perf_counter() - t,
        }
        if ref is not None:
            row["paired"] = paired_delta(x, ref, np.random.default_rng(2), boot)
        ref = ref or x
        out[v.name] = row
    return out


def cost_per_face(chips: Sequence[AlignedFace], engine: Engine, jitter: int) -> dict[str, float]:
    """Mean ms per face of the descriptor alone, one face at a time, one process (the engine's
    runtime single-threaded, as in bulk work; dlib's runtime as it comes)."""
    rt = type(engine.embedder).__name__.removesuffix("Embedder").lower()
    plain, jit = DlibEmbedder(engine.card), DlibEmbedder(engine.card, jitter=jitter)
    runs: dict[str, Callable[[AlignedFace], object]] = {
        f"{rt} plain": lambda c: engine.embedder._raw([c]),
        f"{rt} flip (chip + mirror)": lambda c: engine.embedder._raw([c, mirror(c)]),
        "dlib plain": lambda c: plain._raw([c]),
        f"dlib jitter {jitter}": lambda c: jit._raw([c]),
    }
    out = {}
    for name, fn in runs.items():
        fn(chips[0])  # warm up
        t = time.perf_counter()
        for c in chips:
            fn(c)
        out[name] = (time.perf_counter() - t) * 1000 / len(chips)
    return out


# ---------------------------------------------------------------------------- printing


def pm(d: tuple[float, float, float], scale: float = 1.0) -> str:
    return f"{d[0] * scale:+.3f} ({d[1] * scale:+.3f}…{d[2] * scale:+.3f})"


def print_11(title: str, rows: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(
        f"{'variant':<22}{'no tmpl':>8}  {'10-fold acc (95% CI)':<25}{'Δ vs default, pt (CI)':<26}"
        f"{'EER':>6}{'FNMR@1e-2':>10}{'FNMR@1e-3':>10}  declared FMR-1e-3: FMR / FNMR"
    )
    for name, r in rows.items():
        v: Verif = r["verif"]
        diff = ""
        if "diff" in r:
            lo, hi = r["diff_ci"]
            diff = f"{r['diff'] * 100:+.2f} ({lo * 100:+.2f}…{hi * 100:+.2f})"
        fn = {t: f"{o[0]:.3f}" if o else "n/m" for t, o in v.fnmr.items()}
        dec = "–" if v.declared is None else f"{v.declared[1]:.4f} / {v.declared[2]:.3f}"
        acc = f"{v.fold_acc.mean():.4f} ({r['ci'][0]:.3f}–{r['ci'][1]:.3f})"
        print(
            f"{name:<22}{v.failed:>8}  {acc:<25}{diff:<26}{v.eer:>6.3f}{fn[1e-2]:>10}"
            f"{fn[1e-3]:>10}  {dec}"
        )


def print_1n(title: str, rows: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(
        f"{'variant':<22}{'rank-1':>7}{'FNIR@.1 (CI)':>22}{'FNIR@.01 (CI)':>22}"
        f"{'Δ FNIR@.1 (paired CI)':>26}{'Δ FNIR@.01 (paired CI)':>26}"
        "  declared .1: FPIR n / n*, FNIR | .01: FPIR n / n*, FNIR"
    )
    for name, r in rows.items():
        f, c = r["figures"], r["ci"]
        d = r.get("paired")
        d1 = pm(d["fnir@0.1"]) if d else ""
        d2 = pm(d["fnir@0.01"]) if d else ""
        decl = " | ".join(
            f"{f[f'decl{t} fpir n']:.3f} / {f[f'decl{t} fpir n*']:.3f}, {f[f'decl{t} fnir']:.3f}"
            for t in FPIRS
            if f"decl{t} fnir" in f
        )
        a = f"{f['fnir@0.1']:.3f} ({c['fnir@0.1'][0]:.3f}–{c['fnir@0.1'][1]:.3f})"
        b = f"{f['fnir@0.01']:.3f} ({c['fnir@0.01'][0]:.3f}–{c['fnir@0.01'][1]:.3f})"
        print(f"{name:<22}{f['rank1']:>7.3f}{a:>22}{b:>22}{d1:>26}{d2:>26}  {decl}")


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=HERE / ".data/hard", help="generated data")
    ap.add_argument("--jitter", type=int, default=10, help="dlib num_jitters (0: leave out)")
    ap.add_argument("--jitter-sample", type=int, help="jitter: gallery + first N other images")
    ap.add_argument("--templates-only", action="store_true", help="compute templates, stop")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap draws")
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "faceledger-bench"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    generate(args.data, args.out, args.cache_dir, args.workers)
    pairs = read_pairs(args.out / "pairs.csv")
    gallery = read_image_list(args.out / "gallery.csv")
    probes = read_image_list(args.out / "probes.csv")
    paths = {e.image for lst in (gallery, probes) for e in lst.entries} | set(pairs.images())
    multi_g, _ = multi_protocol(args.out, gallery, probes)
    every = paths | {e.image for e in multi_g.entries}
    recs = face_records(sorted(every), args.cache_dir, args.workers)
    jit: dict[Path, JitterRec] = {}
    if args.jitter:
        order = jitter_order(gallery, sorted(paths))
        jit = jitter_templates(
            order, recs, args.jitter, args.cache_dir, args.workers, _limit(args, gallery, recs)
        )
    t_tm = time.perf_counter()
    print(f"templates: {t_tm - t0:.0f} s")
    if args.templates_only:
        return
    report = evaluate(args, recs, jit, pairs, gallery, probes)
    t_ev = time.perf_counter()
    report["seconds"] = {"templates": t_tm - t0, "evaluation": t_ev - t_tm}
    print(f"\ntime: templates {t_tm - t0:.0f} s, evaluation {t_ev - t_tm:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(to_json(report), indent=1))


def evaluate(
    args: argparse.Namespace,
    recs: dict[Path, ImageRec],
    jit: dict[Path, JitterRec],
    pairs: PairsProtocol,
    gallery: ImageList,
    probes: ImageList,
) -> dict[str, Any]:
    with (args.out / "pairs_meta.csv").open() as fh:
        kinds = [r["probe_kind"] for r in csv.DictReader(fh)]
    plain_id, flip_id = config_card(POLICY).id, config_card(f"{POLICY}+flip").id
    default = Variant("default", config_templates(POLICY, recs, plain_id))
    flip = Variant("flip", config_templates(f"{POLICY}+flip", recs, flip_id))
    report: dict[str, Any] = {"policy": POLICY, "jitter": args.jitter}
    tvars = [default, flip]
    covered = set(recs)
    if jit:
        faceless = {p: r.error or "no_face" for p, r in recs.items() if r.face(POLICY) is None}
        quality = {p: f.quality for p, r in recs.items() if (f := r.face(POLICY)) is not None}
        vectors = {p: j.vector for p, j in jit.items()}
        jt = ImageTemplates(plain_id, vectors, faceless, {p: quality[p] for p in vectors})
        tvars.append(Variant(f"jitter {args.jitter}", jt))
        covered = set(vectors) | set(faceless)
        cos = [j.plain_cosine for j in jit.values()]
        ms = float(np.mean([j.ms for j in jit.values()]))
        print(
            f"\njitter {args.jitter}: {len(jit)} images; chip check (recomputed plain vs cached "
            f"template) cosine min {min(cos):.6f}; dlib jitter {ms:.0f} ms "
            "per face in the 2 workers"
        )
        report["jitter_chip_check_min_cosine"] = min(cos)
        report["jitter_worker_ms"] = ms
    sub_pairs, sub_kinds = pairs_subset(pairs, kinds, covered)
    sub_probes = probes_subset(probes, covered)
    full = {e.image for e in probes.entries} | set(pairs.images()) <= covered
    sample = "" if full else " (jitter subsample)"
    n_gen = sum(p.same for p in sub_pairs.pairs)
    r11 = one_to_one(tvars, sub_pairs, sub_kinds, args.boot)
    print_11(
        f"1:1 hard pairs{sample}: {n_gen} genuine / {len(sub_pairs.pairs) - n_gen} impostor, "
        "10 folds; Δ paired over the folds",
        r11,
    )
    report["pairs"] = {n: {**dataclasses.asdict(r.pop("verif")), **r} for n, r in r11.items()}

    single = [
        default,
        dataclasses.replace(default, name="AS-norm off", normalisation="none"),
        dataclasses.replace(default, name="fused", aggregation="fused"),
        dataclasses.replace(default, name="quality", aggregation="quality"),
        *tvars[1:],
    ]
    r1n = one_to_n(single, gallery, sub_probes, args.boot)
    x0 = r1n["default"]["ident"]
    print_1n(
        f"1:N hard open-set{sample}: {len(gallery.entries)} enrolled (one template each), "
        f"{len(x0.mated)} mated, {len(x0.nonmated)} non-mated + {len(x0.removed)} mate-removed; "
        "Δ paired over probes",
        r1n,
    )
    report["openset"] = _strip(r1n)

    mg, mp = multi_protocol(args.out, gallery, probes)
    multi = [
        Variant("max (default)", default.templates),
        Variant("fused", default.templates, aggregation="fused"),
        Variant("quality", default.templates, aggregation="quality"),
        Variant("AS-norm off, max", default.templates, normalisation="none"),
        Variant("AS-norm off, fused", default.templates, "none", "fused"),
    ]
    rm = one_to_n(multi, mg, mp, args.boot)
    x0 = rm["max (default)"]["ident"]
    n_subj = len({e.subject for e in mg.entries})
    print_1n(
        f"1:N hard open-set, multi: {len(mg.entries)} templates of {n_subj} enrolled, "
        f"{len(x0.mated)} mated, {len(x0.nonmated)} non-mated + {len(x0.removed)} mate-removed",
        rm,
    )
    report["multi"] = _strip(rm)

    if args.jitter:
        settings = dataclasses.replace(Settings(), face_selection=POLICY, flip_average=False)
        engine = worker_engine(settings)
        g = sorted(p for p in {e.image for e in gallery.entries} if recs[p].face(POLICY))
        chips = []
        for p in random.Random(SEED).sample(g, 40):
            face = recs[p].face(POLICY)
            assert face is not None
            chips.append(_chip(engine, str(p), face.box))
        cost = cost_per_face(chips, engine, args.jitter)
        print("\ndescriptor ms per face (40 gallery chips, one process, one face per call): ")
        print("  " + ", ".join(f"{k} {v:.1f}" for k, v in cost.items()))
        report["cost_ms"] = cost
    return report


def _strip(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: {k: v for k, v in r.items() if k != "ident"} for n, r in rows.items()}


def _limit(args: argparse.Namespace, gallery: ImageList, recs: dict[Path, ImageRec]) -> int | None:
    if args.jitter_sample is None:
        return None
    g = {e.image for e in gallery.entries}
    return sum(1 for p in g if recs[p].face(POLICY) is not None) + int(args.jitter_sample)


if __name__ == "__main__":
    main()
