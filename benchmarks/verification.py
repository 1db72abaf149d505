"""1:1 accuracy of the default pipeline and the effect of flip / jitter averaging.

Reports, per configuration, in one run:
- London Set (neutral vs smiling: 102 genuine, 20,604 impostor pairs): TAR at FMR 1e-2 and
  1e-3 with thresholds *measured on these impostors*, and (plain pipeline) at the model's
  built-in calibrated thresholds, which were measured on other data;
- deepface/pairs.csv: 10-fold accuracy (threshold picked on 9 folds, tested on the 10th)
  and accuracy at the calibrated FMR 1e-3 threshold;
- time per image. Templates are cached by image hash under .faceledger/cache.

    .venv/bin/python benchmarks/verification.py [--data DIR] [--configs plain,flip,jitter4]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceledger import Settings
from faceledger.batch import embed_paths
from faceledger.cache import open_cache
from faceledger.models import ModelRegistry

CONFIGS = {
    "plain": Settings(),
    "flip": Settings(flip_average=True),
    "jitter4": Settings(jitter=4),
}


def tar_at(
    genuine: npt.NDArray[np.float64], impostor: npt.NDArray[np.float64], fmr: float
) -> float:
    s = np.sort(impostor)[::-1]
    k = int(np.floor(fmr * s.size))
    t = np.nextafter(s[k], np.inf)
    return float(np.mean(genuine >= t))


def kfold_accuracy(
    scores: npt.NDArray[np.float64], same: npt.NDArray[np.bool_], k: int = 10
) -> tuple[float, float]:
    folds = np.array_split(np.arange(scores.size), k)
    accs = []
    for f in folds:
        train = np.setdiff1d(np.arange(scores.size), f)
        cands = np.unique(scores[train])
        best = max(cands, key=lambda t: np.mean((scores[train] >= t) == same[train]))
        accs.append(np.mean((scores[f] >= best) == same[f]))
    return float(np.mean(accs)), float(np.std(accs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--configs", default="plain,flip,jitter4")
    args = ap.parse_args()
    london = sorted((args.data / "london/images").glob("*.jpg"))
    subj = np.array([p.name.split("_")[0] for p in london])
    rows = list(csv.DictReader((args.data / "deepface/pairs.csv").open()))
    dface = sorted({r["a"] for r in rows} | {r["b"] for r in rows})
    card = ModelRegistry().get("dlib-resnet-v1")
    assert card.calibration is not None
    cal_t = {f: card.calibration.threshold_for(f) for f in (1e-2, 1e-3)}
    print(f"london: {len(london)} images; deepface: {len(rows)} pairs over {len(dface)} images\n")
    head = f"{'config':<9}{'TAR@1e-2':>10}{'TAR@1e-3':>10}{'cal TAR@1e-2':>14}{'cal TAR@1e-3':>14}"
    head += f"{'deepface 10-fold':>20}{'deepface@cal1e-3':>18}{'s/img':>8}"
    print(head)
    for name in args.configs.split(","):
        settings = CONFIGS[name]
        cache = open_cache(settings, card.file("embedder").sha256)
        paths = [*london, *(args.data / "deepface" / p for p in dface)]
        t0 = time.perf_counter()
        outs = embed_paths(paths, settings, cache=cache)
        secs = (time.perf_counter() - t0) / len(paths)
        vec = {
            str(o.path): o.result.template.vector
            for o in outs
            if o.result is not None and o.result.template is not None
        }
        lv = np.stack([vec[str(p)] for p in london]).astype(np.float64)
        sims = lv @ lv.T
        iu = np.triu_indices(len(london), 1)
        same = subj[iu[0]] == subj[iu[1]]
        gen, imp = sims[iu][same], sims[iu][~same]
        d_scores, d_same = [], []
        for r in rows:
            a, b = (
                vec.get(str(args.data / "deepface" / r["a"])),
                vec.get(str(args.data / "deepface" / r["b"])),
            )
            d_scores.append(float(a @ b) if a is not None and b is not None else -1.0)
            d_same.append(r["same"] == "1")
        ds, dm = np.array(d_scores), np.array(d_same)
        mean, std = kfold_accuracy(ds, dm)
        cal = (
            f"{np.mean(gen >= cal_t[1e-2]):14.3f}{np.mean(gen >= cal_t[1e-3]):14.3f}"
            if name == "plain"
            else f"{'n/a':>14}{'n/a':>14}"
        )
        at_cal = (
            f"{np.mean((ds >= cal_t[1e-3]) == dm):18.3f}" if name == "plain" else f"{'n/a':>18}"
        )
        print(
            f"{name:<9}{tar_at(gen, imp, 1e-2):>10.3f}{tar_at(gen, imp, 1e-3):>10.3f}{cal}"
            f"{f'{mean:.3f} ± {std:.3f}':>20}{at_cal}{secs:>8.3f}"
        )
    print(
        "\n(cal = the model card's thresholds, calibrated on utkface_subset + orl + johns;"
        " other columns use thresholds measured on the same data, so they compare configs)"
    )


if __name__ == "__main__":
    main()
