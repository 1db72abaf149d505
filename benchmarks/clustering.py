"""Clustering of unknown faces: the default against the open tools' reference settings.

Writes one ``image,subject`` labels CSV per set (identities from each set's own labels), then
runs ``faceledger eval cluster``'s evaluation on each: pairwise and BCubed precision/recall/F1,
clusters against identities, for the default (threshold from a target FMR of the model card's
calibration) and the reference settings (dlib's Chinese whispers at Euclidean 0.5, DBSCAN at
eps 0.5 with min_samples 1 and 3) on the same templates. Templates are cached by image hash
under .faceledger/cache.

    .venv/bin/python benchmarks/clustering.py [--data ../shared/data] [--labels DIR]
        [--sets london,orl,johns,deepface,meds] [--fmr 1e-4] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from faceledger import Settings
from faceledger.cache import open_cache
from faceledger.evaluate.clustering import Setting, run_clustering
from faceledger.evaluate.protocols import read_image_list
from faceledger.models import ModelRegistry

SETS = ("london", "orl", "johns", "deepface", "meds")


def _london(data: Path) -> list[tuple[Path, str]]:
    return [(p, p.name.split("_")[0]) for p in sorted((data / "london" / "images").glob("*.jpg"))]


def _orl(data: Path) -> list[tuple[Path, str]]:
    return [(p, p.parent.name) for p in sorted((data / "orl").glob("s*/*.pgm"))]


def _johns(data: Path) -> list[tuple[Path, str]]:
    return [
        (p, p.parent.name)
        for p in sorted((data / "johns").glob("*/*"))
        if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    ]


def _meds(data: Path) -> list[tuple[Path, str]]:
    return [(p, p.stem.split("-")[2]) for p in sorted((data / "meds").glob("*.jpg"))]


def _deepface(data: Path) -> list[tuple[Path, str]]:
    """Identities are the connected components of pairs.csv's genuine pairs; an image in no
    genuine pair has no known identity and is left out (couple.jpg holds two people)."""
    folder = data / "deepface"
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    with (folder / "pairs.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["same"].strip() == "1":
                parent[find(row["a"])] = find(row["b"])
    names = sorted(parent)
    roots = {r: f"id{i:02d}" for i, r in enumerate(sorted({find(n) for n in names}))}
    return [(folder / n, roots[find(n)]) for n in names]


READERS = {"london": _london, "orl": _orl, "johns": _johns, "deepface": _deepface, "meds": _meds}


def write_labels(name: str, data: Path, out_dir: Path) -> Path:
    rows = READERS[name](data.resolve())
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "subject"])
        w.writerows((str(p), s) for p, s in rows)
    return path


def hdbscan_settings() -> list[Setting]:
    """scikit-learn's HDBSCAN (when installed: ``pip install '.[bench]'``), Euclidean on the
    unit templates, noise as clusters of one: density-based, no threshold. (Its
    ``cluster_selection_epsilon`` at the FMR threshold's distance crashes in scikit-learn
    1.9.1's epsilon search on these sets, so it is not measured.)"""
    try:
        from sklearn.cluster import HDBSCAN
    except ImportError:
        print("scikit-learn is not installed: HDBSCAN is not measured")
        return []

    def run(x: Any, _s: Any, epsilon: float = 0.0, method: str = "eom") -> Any:
        if len(x) < 2:
            return np.zeros(len(x), dtype=np.int64)
        model = HDBSCAN(
            min_cluster_size=2,
            min_samples=1,
            cluster_selection_epsilon=epsilon,
            cluster_selection_method=method,
            copy=True,
        )
        return model.fit_predict(np.asarray(x, dtype=np.float64))

    return [
        ("hdbscan-eom", "scikit-learn HDBSCAN, min_cluster_size 2, eom", True, run),
        (
            "hdbscan-leaf",
            "scikit-learn HDBSCAN, min_cluster_size 2, leaf",
            True,
            lambda x, s: run(x, s, 0.0, "leaf"),
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--labels", type=Path, default=Path(".faceledger/cluster_labels"))
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--fmr", type=float, default=1e-4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = Settings()
    card = ModelRegistry(settings.model_dir).get(settings.model_id)
    cache = open_cache(settings, card.file("embedder").sha256)
    results = {}
    for name in args.sets.split(","):
        labels = write_labels(name, args.data, args.labels)
        ev = run_clustering(
            read_image_list(labels),
            settings,
            cache=cache,
            target_fmr=args.fmr,
            extra=hdbscan_settings(),
        )
        results[name] = ev.to_json()
        print(f"\n## {name}: {labels}")
        print(ev.markdown())
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
