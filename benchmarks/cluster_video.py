"""Clustering the faces of videos: tracks as pre-clusters, joined into people across shots.

Runs the ``faceledger cluster`` use case (the product's path: scan, track, fuse each track's
best faces, cluster at the card's FMR with cannot-link between tracks on screen together) on:

- ``default``: the composed test scenario (two shots; one person in both);
- ``hard``: the harder composed scenario of ``benchmarks/video.py`` (five shots of 4 s, 3-5 of
  10 people at once, faces 55-110 px, people re-appearing across shots);
- ``video_01``, ``video_02``: real CC BY footage, people labelled by hand in
  ``benchmarks/video_truth.json``;
- ``all``: the four together in one request (people of different videos are different).

Each track is labelled with the person whose labelled box its best face overlaps (IoU >= 0.3
at the best face's time); tracks matching nobody (a false detection, an unlabelled face) are
counted and left out of the scores. The reference in the same run is the tracker alone (each
track its own cluster): clustering must join one person's tracks (recall) without merging two
people (precision). BCubed precision/recall/F over labelled tracks.

    .venv/bin/python benchmarks/cluster_video.py [--videos default,hard,video_01,video_02]
        [--fmr 1e-4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from faceledger import Settings  # noqa: E402
from faceledger.evaluate.clustering import score  # noqa: E402
from faceledger.gallery import local_operator, open_workspace  # noqa: E402
from faceledger.usecases import (  # noqa: E402
    ClusteredFace,
    ClusterImages,
    ImagesClustered,
    cluster_images,
)
from faceledger.video import default_scenario  # noqa: E402
from video import (  # noqa: E402
    DEFAULT_FPS,
    HARD_FPS,
    TruthAppearance,
    best_match,
    composed_truth,
    composed_video,
    hard_scenario,
    real_truth,
)

VIDEOS = ("default", "hard", "video_01", "video_02")


def _videos(data: Path, cache: Path) -> dict[str, tuple[Path, list[TruthAppearance]]]:
    london = data / "london" / "images"
    out: dict[str, tuple[Path, list[TruthAppearance]]] = {}
    apps, shots, enrolled = default_scenario(london)
    path, _ = composed_video(cache, "default", apps, shots, DEFAULT_FPS)
    out["default"] = (path, composed_truth(apps, enrolled, DEFAULT_FPS))
    apps, shots, enrolled = hard_scenario(london, exclude=set())
    path, _ = composed_video(cache, "hard", apps, shots, HARD_FPS)
    out["hard"] = (path, composed_truth(apps, enrolled, HARD_FPS))
    for name in ("video_01", "video_02"):
        truth, _, _ = real_truth(f"{name}.mp4")
        out[name] = (data / "video" / f"{name}.mp4", truth)
    return out


def _label(face: ClusteredFace, truth: Sequence[TruthAppearance]) -> str | None:
    track = face.track
    if track is None:
        return None
    found = best_match(truth, track.best_s, face.box)
    return None if found is None else found.person


def _scores(res: ImagesClustered, truths: dict[str, list[TruthAppearance]]) -> dict[str, Any]:
    labels: list[str] = []
    pred: list[int] = []
    alone: list[int] = []
    unmatched = 0
    for i, f in enumerate(res.faces):
        who = _label(f, truths[f.image])
        if who is None:
            unmatched += 1
            continue
        labels.append(f"{f.image}|{who}")
        pred.append(f.cluster if f.cluster >= 0 else len(res.faces) + i)
        alone.append(i)
    return {
        "tracks": len(res.faces),
        "unmatched_tracks": unmatched,
        "people": len(set(labels)),
        "clusters": len({c for c in pred}),
        "ambiguous": len(res.ambiguous),
        "default": score(pred, labels).to_json(),
        "tracks_alone": score(alone, labels).to_json(),
    }


def _run(
    ws_dir: Path, paths: list[Path], fmr: float, truths: dict[str, list[TruthAppearance]]
) -> dict[str, Any]:
    ws = open_workspace(Settings(data_dir=ws_dir))
    try:
        me = local_operator(ws, "bench")
        t0 = time.perf_counter()
        res = cluster_images(ws, me, ClusterImages(tuple(paths), "benchmark", "BENCH-25", fmr))
        seconds = time.perf_counter() - t0
    finally:
        ws.close()
    out = _scores(res, truths)
    out["seconds"] = round(seconds, 1)
    out["threshold"] = round(res.threshold, 4)
    return out


def _row(name: str, r: dict[str, Any]) -> str:
    d, a = r["default"], r["tracks_alone"]
    return (
        f"| {name} | {r['tracks']} ({r['unmatched_tracks']}) | {r['people']} | {r['clusters']} "
        f"| {d['bcubed_precision']:.3f} | {d['bcubed_recall']:.3f} | **{d['bcubed_f1']:.3f}** "
        f"| {a['bcubed_f1']:.3f} | {r['ambiguous']} | {r['seconds']} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=HERE.parent / ".faceledger" / "bench-video")
    ap.add_argument("--videos", default=",".join(VIDEOS))
    ap.add_argument("--fmr", type=float, default=1e-4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    wanted = [v.strip() for v in args.videos.split(",") if v.strip()]
    videos = {k: v for k, v in _videos(args.data.resolve(), args.cache).items() if k in wanted}
    truths = {str(p): t for p, t in videos.values()}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-video-") as tmp:
        for name, (path, _) in videos.items():
            results[name] = _run(Path(tmp) / name, [path], args.fmr, truths)
        if len(videos) > 1:
            paths = [p for p, _ in videos.values()]
            results["all"] = _run(Path(tmp) / "all", paths, args.fmr, truths)
    print(f"target FMR {args.fmr:g}; BCubed over labelled tracks (unmatched tracks left out)")
    print(
        "| video | tracks (unmatched) | people | clusters | B³ precision | B³ recall | B³ F "
        "| tracks alone: B³ F | ambiguous | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(_row(name, r))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
