"""Every face in ../shared/data through both runtimes of dlib's ResNet: the worst disagreement.

Detects every face of every image (the full search, as ``Engine.embed_all``), aligns it once,
and embeds the same chip with dlib's runtime and with the ONNX export (exported first into a
temporary folder). Prints, per data set, the faces compared and the worst and median template
cosine; the parity test checks a sample of these, this checks them all (slow: dlib's side).

    .venv/bin/python benchmarks/onnx_parity.py [--data ../shared/data] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from faceledger import Engine, Settings
from faceledger.align import align_face
from faceledger.datasets import IMAGE_SUFFIXES
from faceledger.embed import Embedder, make_embedder
from faceledger.embed.dlib_export import export_dlib_resnet_onnx
from faceledger.embed.onnx import OnnxEmbedder
from faceledger.errors import FaceLedgerError
from faceledger.models import ModelRegistry

_state: tuple[Engine, Embedder, Embedder] | None = None


def _init(model_dir: str) -> None:
    global _state
    engine = Engine(Settings())
    onnx_card = ModelRegistry(Path(model_dir)).get("dlib-resnet-v1")
    _state = (engine, make_embedder(engine.card), OnnxEmbedder(onnx_card, threads=1))


def _cosines(path: str) -> list[float]:
    assert _state is not None
    engine, dlib_emb, onnx_emb = _state
    try:
        img = engine.load(path)
    except FaceLedgerError:
        return []
    faces = [
        align_face(img.pixels, d, engine.card.align) for d in engine.detector.detect(img.pixels)
    ]
    if not faces:
        return []
    a = np.stack([t.vector for t in dlib_emb.embed(faces)]).astype(np.float64)
    b = np.stack([t.vector for t in onnx_emb.embed(faces)]).astype(np.float64)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return [float(c) for c in cos]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    sets = sorted(p for p in args.data.iterdir() if p.is_dir() and p.name != "protocols")
    started = time.perf_counter()
    print(f"load average {os.getloadavg()}")
    worst_all = 1.0
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        export_dlib_resnet_onnx(Path(tmp))
        with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(tmp,)) as pool:
            print(f"{'set':<16}{'images':>8}{'faces':>8}{'worst cosine':>16}{'median 1-cos':>14}")
            for folder in sets:
                images = sorted(
                    str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                )
                cos = [c for cs in pool.map(_cosines, images, chunksize=4) for c in cs]
                if not cos:
                    continue
                arr = np.asarray(cos)
                worst_all = min(worst_all, float(arr.min()))
                total += arr.size
                print(
                    f"{folder.name:<16}{len(images):>8}{arr.size:>8}{arr.min():>16.9f}"
                    f"{np.median(1 - arr):>14.2e}"
                )
    print(
        f"\n{total} faces; worst cosine {worst_all:.9f} (1 - cos = {1 - worst_all:.1e}); "
        f"{time.perf_counter() - started:.0f} s; load average {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
