"""The issue's reference on our protocols: face_recognition's own 1:N against faceledger's.

Issue 9 states its target against ``face_recognition``'s pipeline (HOG with one upsampling,
5-point alignment, dlib's ResNet, Euclidean distance, the first face of each image). This runs
that pipeline itself, in its own environment (``benchmarks/_fr_reference.py``, the reference of
``throughput.py``; set up as described in benchmarks/README.md, "Throughput"), on the
single-image open-set protocols, scores each probe against every gallery image by negative
Euclidean distance, and measures it with the same NIST definitions
(``faceledger.evaluate.openset``) as faceledger's default search (``GallerySearch``, the
ranking ``faceledger search`` uses, default settings). Printed per split: rank-1, FNIR at FPIR
0.1 and 0.01 (thresholds measured on the non-mated probes), the FPIR face_recognition's default
tolerance 0.6 gives, and faceledger's FNIR over face_recognition's. ``both`` enrols the
gallery of both splits and searches the probes of both (twice the gallery size);
``--utkface-rest`` adds ``both+rest``, whose gallery also holds every UTKFace image no
protocol uses (~1,000 enrolled). "mate-rm" is FNIR at FPIR 0.01 with every mated search also
searched again as a non-mated one with its mate's subject taken out of the gallery (NIST's
mate-removed searches; for faceledger out of the normalisation statistics too, see
``openset.mate_removed``): non-mated probes then come from every population, not only UTKFace.

    .venv/bin/python benchmarks/openset_baseline.py [--protocols protocols] [--procs 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceledger import Settings
from faceledger.evaluate.identify import evaluate_identify
from faceledger.evaluate.openset import (
    IdentOperatingPoint,
    ProbeSearch,
    cmc,
    fnir_at_fpir,
    rates_at_threshold,
)
from faceledger.evaluate.protocols import ImageList, ListEntry, read_image_list
from faceledger.gallery.evaluation import GallerySearch
from faceledger.models import ModelRegistry

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "scripts"))
from make_protocols import UTK_SAME_PERSON  # noqa: E402

from openset import augmented_nonmated, mate_removed, templates_for  # noqa: E402

TARGETS = (0.1, 0.01)
FR_TOLERANCE = 0.6
"""face_recognition.compare_faces' default: a distance at or below it is a 'match'."""


def fr_encodings(
    paths: Sequence[Path], fr_python: Path, procs: int, cache: Path
) -> dict[str, np.ndarray | None]:
    """face_recognition's first encoding of each image (None: no face), cached by path list."""
    key = hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()[:16]
    file = cache / f"fr-openset-{key}.json"
    if not file.exists():
        shares = [[str(p) for p in paths[i::procs]] for i in range(procs)]
        with tempfile.TemporaryDirectory() as tmp:
            jobs = []
            for i, share in enumerate(shares):
                (Path(tmp) / f"in{i}.json").write_text(json.dumps(share))
                cmd = [str(fr_python), str(HERE / "_fr_reference.py")]
                cmd += [f"{tmp}/in{i}.json", f"{tmp}/out{i}.json"]
                jobs.append(subprocess.Popen(cmd))
            if any(j.wait() != 0 for j in jobs):
                raise SystemExit("the face_recognition reference failed")
            merged: dict[str, list[float] | None] = {}
            for i in range(procs):
                merged |= json.loads((Path(tmp) / f"out{i}.json").read_text())["encodings"]
        cache.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(merged))
    raw = json.loads(file.read_text())
    return {p: None if v is None else np.asarray(v) for p, v in raw.items()}


def fr_searches(
    gallery: ImageList, probes: ImageList, enc: dict[str, np.ndarray | None]
) -> list[ProbeSearch]:
    """Each probe against every gallery image with an encoding: score = -distance, best first,
    one candidate per subject (its closest image); no face: no candidates."""
    rows = [(e.subject, enc[str(e.image)]) for e in gallery.entries]
    kept = [(s, v) for s, v in rows if v is not None]
    names = [s for s, _ in kept]
    mat = np.stack([v for _, v in kept])
    enrolled = {e.subject for e in gallery.entries}
    out = []
    for e in probes.entries:
        v = enc[str(e.image)]
        cands: tuple[tuple[str, float], ...] = ()
        if v is not None:
            d = np.linalg.norm(mat - v, axis=1)
            best: dict[str, float] = {}
            for name, dist in zip(names, d, strict=True):
                best[name] = max(best.get(name, -np.inf), -float(dist))
            cands = tuple(sorted(best.items(), key=lambda c: -c[1])[:20])
        out.append(ProbeSearch(e.subject, e.subject in enrolled, cands, e.group))
    return out


def summary(searches: Sequence[ProbeSearch]) -> tuple[float, dict[float, float | None]]:
    ops = fnir_at_fpir(searches, TARGETS)
    fnir = {t: (op.fnir if isinstance(op, IdentOperatingPoint) else None) for t, op in ops.items()}
    ranks = cmc(searches) or [float("nan")]
    return ranks[0], fnir


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:.3f}"


def utkface_rest(protocols: Sequence[ImageList], data: Path) -> tuple[ListEntry, ...]:
    """Every UTKFace image no protocol list uses, as one-image distractor subjects: the largest
    gallery of real faces this data allows. That is the children: the adults the protocols
    leave out are second photos of people already in them (``UTK_SAME_PERSON``), whose
    enrolment under another name would turn mated searches into "false positives"."""
    used = {e.image.resolve() for lst in protocols for e in lst.entries}
    rest = sorted(
        p
        for p in (data / "utkface_subset/images").glob("*.jpg")
        if p.resolve() not in used and p.name not in UTK_SAME_PERSON
    )
    return tuple(ListEntry(p, f"utk-rest:{p.name}") for p in rest)


def row(
    name: str,
    searches: Sequence[ProbeSearch],
    no_face: int,
    removed: Sequence[ProbeSearch] | None = None,
) -> tuple[float | None, float | None]:
    """Print one pipeline's figures; return its FNIR at FPIR 0.01, plain and mate-removed
    (``removed``: the mated probes' searches with their subject out of the gallery; without
    it, the mate is only dropped from the candidate list, which is the same for raw scores)."""
    r1, fnir = summary(searches)
    if removed is None:
        extra = augmented_nonmated(searches)
    else:
        extra = [s for s in searches if not s.mated] + list(removed)
    _, fnir_aug = summary([s for s in searches if s.mated] + extra)
    print(
        f"{'':<6}{name:<34}{no_face:>8}{fmt(r1):>8}{fmt(fnir[0.1]):>9}{fmt(fnir[0.01]):>9}"
        f"{fmt(fnir_aug[0.01]):>10}"
    )
    return fnir[0.01], fnir_aug[0.01]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--protocols", type=Path, default=Path("protocols"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--fr-python", type=Path, default=HERE / ".venv-fr/bin/python")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument(
        "--utkface-rest",
        action="store_true",
        help="add split both+rest: both galleries plus every unused UTKFace image (~1,000 people)",
    )
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "faceledger-bench"
    )
    args = ap.parse_args()
    splits = {
        s: tuple(
            read_image_list(args.protocols / f"openset_{s}_{r}.csv") for r in ("gallery", "probes")
        )
        for s in ("dev", "test")
    }
    # both splits together: twice the gallery (how the comparison moves with gallery size)
    dev, test = splits["dev"], splits["test"]
    both = tuple(
        ImageList(a.source, a.entries + b.entries, a.has_groups and b.has_groups)
        for a, b in zip(dev, test, strict=True)
    )
    splits["both"] = both
    if args.utkface_rest:
        extra = utkface_rest([*dev, *test], args.data)
        splits["both+rest"] = (ImageList(both[0].source, both[0].entries + extra, False), both[1])
    paths = sorted({e.image for g, p in splits.values() for e in (*g.entries, *p.entries)})
    enc = fr_encodings(paths, args.fr_python, args.procs, args.cache_dir)
    settings = Settings()
    card = ModelRegistry().get(settings.model_id)
    tm = templates_for([lst for pair in splits.values() for lst in pair], settings, card)
    print(
        f"{'split':<6}{'pipeline':<34}{'no face':>8}{'rank-1':>8}{'FNIR@.1':>9}{'FNIR@.01':>9}"
        f"{'mate-rm':>10}{'FPIR at tol 0.6':>17}"
    )
    for split, (gallery, probes) in splits.items():
        print(f"{split} ({len(gallery.entries)} gallery images)")
        fr = fr_searches(gallery, probes, enc)
        tol = rates_at_threshold(fr, -FR_TOLERANCE)
        no_face = sum(1 for e in probes.entries if enc[str(e.image)] is None)
        ref = row("face_recognition (HOG, Euclidean)", fr, no_face)
        print(f"{'':<82}{fmt(tol.fpir)} ({tol.false_positives}/{tol.nonmated})")
        search = GallerySearch(settings, card.id)
        ev = evaluate_identify(gallery, probes, tm, search=search, targets=TARGETS)
        removed = mate_removed(settings, card.id, gallery, probes, tm)
        ours = row("faceledger default", list(ev.searches), sum(ev.probe_failed), removed)
        print(f"{'':<6}{'ratio faceledger / face_recognition':<59}"
              f"{fmt(_ratio(ours[0], ref[0])):>9}"
              f"{fmt(_ratio(ours[1], ref[1])):>10}")  # fmt: skip


if __name__ == "__main__":
    main()
