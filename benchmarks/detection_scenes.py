"""Detection recall and precision on ``scenes/`` (hand-marked boxes), for each backend.

A detection counts when it overlaps an unmatched marked box with IoU >= 0.5 (greedy, best
IoU first). dlib's frontal detectors return boxes of a similar style to these marks.

    .venv/bin/python benchmarks/detection_scenes.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from faceledger import Engine, Settings
from faceledger.types import Box


def marked_boxes(scenes: Path) -> dict[str, list[Box]]:
    out: dict[str, list[Box]] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(scenes / name).getroot().iter("image"):
            boxes = [
                Box(
                    float(b.get("left", 0)),
                    float(b.get("top", 0)),
                    float(b.get("left", 0)) + float(b.get("width", 0)),
                    float(b.get("top", 0)) + float(b.get("height", 0)),
                )
                for b in image.iter("box")
            ]
            out[str(image.get("file"))] = boxes
    return out


def match(found: list[Box], truth: list[Box], min_iou: float = 0.5) -> int:
    pairs = sorted(
        ((f.iou(t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)),
        reverse=True,
    )
    used_f: set[int] = set()
    used_t: set[int] = set()
    for iou, i, j in pairs:
        if iou < min_iou:
            break
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
    return len(used_t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--detectors", default="hog,cnn")
    args = ap.parse_args()
    truth = marked_boxes(args.data / "scenes")
    n_truth = sum(len(v) for v in truth.values())
    print(f"{len(truth)} images, {n_truth} marked faces (IoU >= 0.5)\n")
    print(
        f"{'detector':<10}{'found':>7}{'correct':>9}{'recall':>9}{'precision':>11}{'s/image':>10}"
    )
    for name in args.detectors.split(","):
        engine = Engine(Settings(detector=name))  # type: ignore[arg-type]
        engine.detector.detect(engine.load(args.data / "london/images/001_neutral.jpg").pixels)
        found_total = correct = 0
        t0 = time.perf_counter()
        for file, boxes in truth.items():
            img = engine.load(args.data / "scenes" / file)
            found = [d.box for d in engine.detector.detect(img.pixels)]
            found_total += len(found)
            correct += match(found, boxes)
        secs = (time.perf_counter() - t0) / len(truth)
        recall = correct / n_truth
        precision = correct / found_total if found_total else float("nan")
        print(
            f"{name:<10}{found_total:>7}{correct:>9}{recall:>9.3f}{precision:>11.3f}{secs:>10.2f}"
        )


if __name__ == "__main__":
    main()
