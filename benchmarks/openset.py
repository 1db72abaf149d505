"""Open-set 1:N on the dev protocols: score normalisation, template fusion, flip — measured.

Protocols (``scripts/make_protocols.py``, described in benchmarks/README.md "Open-set 1:N"):
``openset_dev_*`` is the split the method was chosen and calibrated on, ``openset_test_*`` is
held out. Every configuration runs through the code path of ``faceledger eval identify``
(``evaluate_identify`` with ``GallerySearch``, i.e. the ranking ``faceledger search`` uses) and
prints rank-1, FNIR at FPIR 0.1 and 0.01 (thresholds measured on the non-mated probes, NIST
definitions), and for the threshold ``search`` *declares* for FPIR 0.1 and 0.01 at this gallery
size: the FPIR it gives on the non-mated probes (n) and on those plus every mated probe
searched again with its subject taken out of the gallery (n*, more searches, same people;
:func:`mate_removed`), with the FNIR it costs.

    .venv/bin/python benchmarks/openset.py [--flip] [--hog] [--scaling] [--write-calibration]
    .venv/bin/python benchmarks/openset.py --selfcal        # card vs gallery-counted threshold
    .venv/bin/python benchmarks/openset.py --synthetic 5000 # the same at 5,000 synthetic people

``--write-calibration`` rebuilds the model card's open-set calibration from the dev split only
(``match.openset.calibrate_openset``) and writes it into the built-in card; ``--flip`` adds
flip-averaged templates (embeds every image again unless cached); ``--hog`` adds rows with
the HOG detector alone (the default ``hog+cnn`` runs the CNN where HOG finds no face);
``--scaling`` checks declared vs measured FPIR at several gallery sizes drawn from the
held-out split.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceledger import Settings
from faceledger.cache import open_cache
from faceledger.evaluate.identify import IdentifyEvaluation, evaluate_identify
from faceledger.evaluate.intervals import clopper_pearson
from faceledger.evaluate.openset import IdentOperatingPoint, ProbeSearch, rates_at_threshold
from faceledger.evaluate.protocols import ImageList, ListEntry, read_image_list
from faceledger.evaluate.templates import ImageTemplates, embed_images
from faceledger.gallery.evaluation import GallerySearch
from faceledger.match.identify import operating_point
from faceledger.match.openset import calibrate_openset, subject_halves
from faceledger.models import ModelCard, ModelRegistry
from faceledger.models.registry import builtin_cards_dir

DECLARED = (0.1, 0.01)


def templates_for(
    lists: Sequence[ImageList], settings: Settings, card: ModelCard
) -> ImageTemplates:
    paths = [e.image for lst in lists for e in lst.entries]
    cache = open_cache(settings, card.file("embedder").sha256)
    return embed_images(paths, settings, cache=cache)


def write_calibration(protocols: Path, settings: Settings, card: ModelCard) -> ModelCard:
    """Open-set calibration from every dev-split image (gallery and probes), nothing else."""
    lists = [read_image_list(protocols / f"openset_dev_{r}.csv") for r in ("gallery", "probes")]
    tm = templates_for(lists, settings, card)
    entries = {e.image: e.subject for lst in lists for e in lst.entries}
    vecs, keep = tm.stack(list(entries))
    names = [list(entries.values())[i] for i in keep]
    codes = {s: i for i, s in enumerate(sorted(set(names)))}
    cal = calibrate_openset(
        subject_halves(vecs, [codes[s] for s in names]),
        source=(
            f"one image per person per draw from {len(keep)} templates of {len(codes)} people: "
            "the images of protocols/openset_dev_gallery.csv and openset_dev_probes.csv (London "
            "Set, ORL, johns, UTKFace adults); the held-out openset_test_* split is not used"
        ),
    )
    updated = card.with_openset(cal)
    updated.save(builtin_cards_dir() / f"{card.id}.json")
    print(
        f"open-set calibration written: {cal.curve.impostor_pairs:,} impostor pairs, tail above "
        f"z={cal.tail.threshold:.3f} (shape {cal.tail.shape:+.3f}, scale {cal.tail.scale:.3f})"
    )
    return updated


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    ev: IdentifyEvaluation
    declared: dict[float, tuple[float, IdentOperatingPoint, int, int, str]]


def augmented_nonmated(searches: Sequence[ProbeSearch]) -> list[ProbeSearch]:
    """Non-mated searches plus every mated search with its mate removed from the list: exact
    for raw scores only (with normalised ones the mate stays in the probe's cohort statistics
    and lowers every impostor's score; :func:`mate_removed` does it properly)."""
    out = [s for s in searches if not s.mated]
    for s in searches:
        if s.mated:
            rest = tuple(c for c in s.candidates if c[0] != s.subject)
            out.append(ProbeSearch(s.subject, False, rest, s.group))
    return out


def mate_removed(
    settings: Settings, model_id: str, gallery: ImageList, probes: ImageList, tm: ImageTemplates
) -> list[ProbeSearch]:
    """Every mated probe searched again, through the production ranking, with its subject
    taken out of the gallery (candidates and normalisation statistics): a non-mated search."""
    gal = [e for e in gallery.entries if tm.vectors.get(e.image) is not None]
    enrolled = {e.subject for e in gal}
    prb = [
        e for e in probes.entries if e.subject in enrolled and tm.vectors.get(e.image) is not None
    ]
    if not prb:
        return []
    lists = GallerySearch(settings, model_id)(
        np.stack([np.asarray(tm.vectors[e.image], np.float32) for e in gal]),
        [e.subject for e in gal],
        np.stack([np.asarray(tm.vectors[e.image], np.float32) for e in prb]),
        20,
        leave_out=[e.subject for e in prb],
    )
    return [ProbeSearch(e.subject, False, tuple(c)) for e, c in zip(prb, lists, strict=True)]


def run(
    name: str,
    settings: Settings,
    card: ModelCard,
    gallery: ImageList,
    probes: ImageList,
    tm: ImageTemplates,
) -> Row:
    search = GallerySearch(settings, card.id)
    ev = evaluate_identify(
        gallery, probes, tm, search=search, declare=search.declare, declared_targets=DECLARED
    )
    aug = [s for s in ev.searches if not s.mated] + mate_removed(
        settings, card.id, gallery, probes, tm
    )
    declared = {}
    for fpir, point in ev.declared.items():
        t = point.declared.threshold
        fp_aug = sum(1 for s in aug if s.top_score >= t)
        declared[fpir] = (t, point.measured, fp_aug, len(aug), point.declared.normalisation)
    return Row(name, ev, declared)


def fmt(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:.3f}"


def print_rows(title: str, rows: Sequence[Row]) -> None:
    ev0 = rows[0].ev
    print(
        f"\n{title}: {ev0.gallery_templates} gallery templates of {ev0.enrolled_subjects} people, "
        f"{ev0.mated} mated / {ev0.nonmated} non-mated probes"
    )
    head = f"{'config':<22}{'no face':>8}{'rank-1':>7}{'FNIR@.1':>9}{'FNIR@.01':>9}"
    for f in DECLARED:
        head += f" | decl {f:<4} FPIR n (95% CI)        n*      FNIR"
    print(head)
    for r in rows:
        ops = r.ev.operating
        f1 = ops.get(0.1)
        f2 = ops.get(0.01)
        line = (
            f"{r.name:<22}{sum(r.ev.probe_failed):>8}{fmt(r.ev.cmc[0] if r.ev.cmc else None):>7}"
            f"{fmt(f1.fnir if isinstance(f1, IdentOperatingPoint) else None):>9}"
            f"{fmt(f2.fnir if isinstance(f2, IdentOperatingPoint) else None):>9}"
        )
        for f in DECLARED:
            _, at, fp_aug, n_aug, _ = r.declared[f]
            ci = at.fpir_ci or (0.0, 1.0)
            aug_ci = clopper_pearson(fp_aug, n_aug)
            line += (
                f" | {fmt(at.fpir)} ({ci[0]:.3f}–{ci[1]:.3f})"
                f" {fp_aug / n_aug:.3f} ({aug_ci[0]:.3f}–{aug_ci[1]:.3f}) {fmt(at.fnir)}"
            )
        print(line)


def scaling(card: ModelCard, base: Settings, protocols: Path, tm: ImageTemplates) -> None:
    """Declared vs measured FPIR as the gallery grows (held-out split, one image per person)."""
    g = read_image_list(protocols / "openset_test_gallery.csv")
    p = read_image_list(protocols / "openset_test_probes.csv")
    first: dict[str, ListEntry] = {}
    for e in (*g.entries, *p.entries):
        if tm.vectors.get(e.image) is not None:
            first.setdefault(e.subject, e)
    people = sorted(first)
    print(f"\nscaling (held-out split, {len(people)} people, one image each; 3 draws per size)")
    print(f"{'N':>5} {'config':<8}" + "".join(f" decl {f:<5}meas (n)     " for f in DECLARED))
    rng = np.random.default_rng(7)
    for n in (200, 250, 300):
        for mode in ("none", "asnorm"):
            settings = dataclasses.replace(base, normalisation=mode)  # type: ignore[arg-type]
            fps = dict.fromkeys(DECLARED, 0)
            total = 0
            for _ in range(3):
                chosen = rng.permutation(people)
                gal = ImageList(g.source, tuple(first[s] for s in chosen[:n]), False)
                prb = ImageList(p.source, tuple(first[s] for s in chosen[n:]), False)
                ev = evaluate_identify(gal, prb, tm, search=GallerySearch(settings, card.id))
                total += ev.nonmated
                for f in DECLARED:
                    op, _ = operating_point(card, mode, f, ev.gallery_templates)
                    fps[f] += rates_at_threshold(ev.searches, op.threshold).false_positives
            print(
                f"{n:>5} {mode:<8}"
                + "".join(f" {f:<10} {fps[f] / total:.3f} ({total})" for f in DECLARED)
            )


def selfcal_check(card: ModelCard, base: Settings, protocols: Path, tm: ImageTemplates) -> None:
    """Declared vs measured FPIR, threshold from the model card vs counted on the gallery.

    Every person of both splits (one image each) is pooled; each draw enrols a random half and
    searches the other half (all non-mated). The gallery's own count learns nothing from the
    dev split, the card's calibration does (its row is flattered on dev people).
    """
    people: dict[str, ListEntry] = {}
    for split in ("dev", "test"):
        for role in ("gallery", "probes"):
            lst = read_image_list(protocols / f"openset_{split}_{role}.csv")
            for e in lst.entries:
                if tm.vectors.get(e.image) is not None:
                    people.setdefault(e.subject, e)
    names = sorted(people)
    src = protocols / "openset_test_gallery.csv"
    targets = (0.1, 0.05, 0.02)
    print(
        f"\nthreshold source (pooled splits, {len(names)} people, one image each; 12 draws, "
        "each enrolling 5/6 of them and searching the rest)"
    )
    print(f"{'source':<12}" + "".join(f" decl {f:<5} meas (95% CI)    " for f in targets))
    rng = np.random.default_rng(11)
    draws = [rng.permutation(names) for _ in range(12)]
    for source in ("card", "auto"):
        settings = dataclasses.replace(base, fpir_calibration=source)
        fps = dict.fromkeys(targets, 0)
        used = dict.fromkeys(targets, "")
        total = 0
        for chosen in draws:
            half = 5 * len(chosen) // 6
            gal = ImageList(src, tuple(people[s] for s in chosen[:half]), False)
            prb = ImageList(src, tuple(people[s] for s in chosen[half:]), False)
            search = GallerySearch(settings, card.id)
            ev = evaluate_identify(
                gal, prb, tm, search=search, declare=search.declare, declared_targets=targets
            )
            total += ev.nonmated
            for f, point in ev.declared.items():
                fps[f] += point.measured.false_positives
                used[f] = point.declared.source
        line = f"{source:<12}"
        for f in targets:
            lo, hi = clopper_pearson(fps[f], total)
            line += f" {f:<10} {fps[f] / total:.3f} ({lo:.3f}-{hi:.3f}) {used[f][:4]}"
        print(line + f"   n={total}")


def synthetic_check(n: int, cache: Path) -> None:
    """Declared vs measured FPIR at a size no real set here reaches: ``n`` face-like synthetic
    people enrolled (one template each, ``index.synthetic.FaceLikeModel`` fitted as in
    ``search_scale.py``) and ``n`` others searched, threshold from the card vs counted."""
    import search_scale

    fit = argparse.Namespace(fit_sets="orl,london,johns", seed=20240)
    model = search_scale.fit_model(fit, cache)
    rng = np.random.default_rng(5)
    vecs = model.templates(model.identities(2 * n, rng), np.arange(2 * n), rng)
    paths = [Path(f"/synthetic/{i}") for i in range(2 * n)]
    tm = ImageTemplates("dlib-resnet-v1", dict(zip(paths, vecs, strict=True)), {})
    src = Path("synthetic.csv")
    gal = ImageList(src, tuple(ListEntry(paths[i], f"s{i}") for i in range(n)), False)
    prb = ImageList(src, tuple(ListEntry(paths[i], f"s{i}") for i in range(n, 2 * n)), False)
    print(f"\nsynthetic: {n:,} face-like people enrolled, {n:,} others searched")
    for source in ("card", "auto"):
        search = GallerySearch(Settings(fpir_calibration=source), "dlib-resnet-v1")
        ev = evaluate_identify(gal, prb, tm, search=search, declare=search.declare)
        line = f"  {source:<5}"
        for f, point in ev.declared.items():
            m = point.measured
            line += (
                f" | declared {f:g} from {point.declared.source}"
                f"{' (tail)' if point.declared.extrapolated else ''}: measured {m.fpir:.4f} "
                f"({m.false_positives}/{m.nonmated}), ratio {point.ratio:.2f}"
            )
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--protocols", type=Path, default=Path("protocols"))
    ap.add_argument("--model", default=Settings().model_id, help="model card id")
    ap.add_argument("--flip", action="store_true")
    ap.add_argument(
        "--hog", action="store_true", help="add rows with the HOG detector alone (no CNN fallback)"
    )
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument(
        "--selfcal", action="store_true", help="only: card vs gallery-counted thresholds"
    )
    ap.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="only: the same at N face-like synthetic people (e.g. 5000)",
    )
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "faceledger-bench"
    )
    ap.add_argument("--write-calibration", action="store_true")
    ap.add_argument("--calibration-only", action="store_true", help="write it and stop")
    args = ap.parse_args()
    if args.synthetic:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        synthetic_check(args.synthetic, args.cache_dir)
        return
    base = Settings(model_id=args.model)
    card = ModelRegistry().get(base.model_id)
    if args.write_calibration or args.calibration_only:
        card = write_calibration(args.protocols, base, card)
        if args.calibration_only:
            return
    if card.openset is None:
        raise SystemExit("the model card has no open-set calibration: run --write-calibration")
    print(f"open-set calibration: {card.openset.source}")
    lists = {
        (split, multi, role): read_image_list(
            args.protocols / f"openset_{split}{'_multi' if multi else ''}_{role}.csv"
        )
        for split in ("dev", "test")
        for multi in (False, True)
        for role in ("gallery", "probes")
    }
    if args.selfcal:
        tm = templates_for(list(lists.values()), base, card)
        selfcal_check(card, base, args.protocols, tm)
        return
    variants = [("", base)]
    if args.flip:
        variants.append(("flip ", dataclasses.replace(base, flip_average=True)))
    if args.hog:
        variants.append(("hog ", dataclasses.replace(base, detector="hog")))
    templates = {prefix: templates_for(list(lists.values()), s, card) for prefix, s in variants}
    for split in ("dev", "test"):
        for multi in (False, True):
            rows = []
            aggs = ("max", "fused", "quality") if multi else ("max",)
            for prefix, s in variants:
                for mode in ("none", "asnorm"):
                    for agg in aggs:
                        settings = dataclasses.replace(s, normalisation=mode, aggregation=agg)  # type: ignore[arg-type]
                        name = f"{prefix}{'raw' if mode == 'none' else mode}"
                        name += f" {agg}" if multi else ""
                        rows.append(
                            run(
                                name,
                                settings,
                                card,
                                lists[(split, multi, "gallery")],
                                lists[(split, multi, "probes")],
                                templates[prefix],
                            )
                        )
            title = f"{split}{' multi-image' if multi else ''}"
            print_rows(title, rows)
    if args.scaling:
        scaling(card, base, args.protocols, templates[""])


if __name__ == "__main__":
    main()
