"""Open-set 1:N on ORL through the gallery search path, and bulk enrolment throughput.

ORL protocol (``../shared/data/protocols/orl_*.csv``): images 1–3 of s1–s30 enrolled; images
4–10 of those subjects are mated probes, all images of s31–s40 non-mated. For each per-subject
aggregation (best template ``max`` / mean template ``fused``) it prints rank-1, FNIR at FPIR
0.1 and 0.01 (thresholds measured on the non-mated probes, NIST-style), and the check that
matters to users: the threshold ``faceledger search`` *declares* for FPIR 0.01 from the model's
calibration, with the FPIR and FNIR it actually gives here. Then the images/s of a bulk
enrolment of ``utkface_subset`` (1,200 images, all cores, no template cache).

    .venv/bin/python benchmarks/identification.py [--data ../shared/data] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from faceledger import Settings
from faceledger.cache import open_cache
from faceledger.evaluate.protocols import read_image_list
from faceledger.evaluate.templates import embed_images
from faceledger.gallery import local_operator, open_workspace
from faceledger.gallery.evaluation import GallerySearch
from faceledger.match.identify import threshold_for_fpir
from faceledger.models import ModelRegistry
from faceledger.usecases import EnrolFolder, enrol_folder


def fnir_at_fpir(
    mate_scores: np.ndarray, top_nonmated: np.ndarray, fpir: float
) -> tuple[float, float]:
    s = np.sort(top_nonmated)[::-1]
    k = int(np.floor(fpir * s.size))
    if k >= s.size:
        return float("nan"), float("nan")
    t = float(np.nextafter(s[k], np.inf))
    return t, float(np.mean(mate_scores < t))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    card = ModelRegistry().get("dlib-resnet-v1")
    assert card.calibration is not None
    gallery = read_image_list(args.data / "protocols/orl_gallery.csv")
    probes = read_image_list(args.data / "protocols/orl_probes.csv")
    base = Settings()
    paths = [e.image for e in gallery.entries] + [e.image for e in probes.entries]
    templates = embed_images(paths, base, cache=open_cache(base, card.file("embedder").sha256))
    gv, gk = templates.stack([e.image for e in gallery.entries])
    gsub = [gallery.entries[i].subject for i in gk]
    pv, pk = templates.stack([e.image for e in probes.entries])
    psub = [probes.entries[i].subject for i in pk]
    enrolled = set(gsub)
    n_mated = sum(e.subject in enrolled for e in probes.entries)
    n_non = len(probes.entries) - n_mated
    declared_t, cmp_fmr = threshold_for_fpir(card.calibration, 0.01, len(gsub))
    print(
        f"ORL: {len(gsub)} templates of {len(enrolled)} subjects; {n_mated} mated and {n_non} "
        f"non-mated probes ({len(probes.entries) - len(pk)} probes without a face count as misses)"
    )
    print(
        f"declared threshold for FPIR 0.01 over {len(gsub)} templates: {declared_t:.4f} "
        f"(per-comparison FMR {cmp_fmr:.2e})\n"
    )
    print(
        f"{'aggregation':<12}{'rank-1':>8}{'FNIR@0.1':>10}{'FNIR@0.01':>11}"
        f"{'declared: FPIR':>16}{'FNIR':>7}"
    )
    for agg in ("max", "fused"):
        search = GallerySearch(dataclasses.replace(base, aggregation=agg), card.id)  # type: ignore[arg-type]
        ranked = search(gv, gsub, pv, 20)
        mate, top_non, rank1 = [], [], 0
        for subj, cands in zip(psub, ranked, strict=True):
            if subj in enrolled:
                score = next((s for n, s in cands if n == subj), -np.inf)
                top = cands[0][0] if cands else None
                rank1 += top == subj
                # rank-1 FNIR: the mate counts only when it is the top candidate
                mate.append(score if top == subj else -np.inf)
            else:
                top_non.append(cands[0][1] if cands else -np.inf)
        m, t_non = np.array(mate), np.array(top_non)
        _, f1 = fnir_at_fpir(m, t_non, 0.1)
        _, f2 = fnir_at_fpir(m, t_non, 0.01)
        fpir_decl = float(np.mean(t_non >= declared_t))
        fnir_decl = float(np.mean(m < declared_t)) + (n_mated - m.size) / n_mated
        print(
            f"{agg:<12}{rank1 / n_mated:>8.3f}{f1:>10.3f}{f2:>11.3f}"
            f"{fpir_decl:>16.3f}{fnir_decl:>7.3f}"
        )
    if args.skip_throughput:
        return
    with tempfile.TemporaryDirectory() as tmp:
        ws = open_workspace(dataclasses.replace(base, data_dir=Path(tmp)))
        ws.store.create_gallery("utk", model_id=card.id, created_by="bench", legal_basis="other")
        me = local_operator(ws, "bench")
        t0 = time.perf_counter()
        rep = enrol_folder(ws, me, EnrolFolder("utk", args.data / "utkface_subset/labels.csv"))
        secs = time.perf_counter() - t0
        ws.close()
    print(
        f"\nbulk enrolment of utkface_subset: {rep.total_items} images in {secs:.1f} s = "
        f"{rep.total_items / secs:.1f} images/s on {os.cpu_count()} cores "
        f"({rep.enrolled} enrolled, {len(rep.rejected)} rejected)"
    )


if __name__ == "__main__":
    main()
