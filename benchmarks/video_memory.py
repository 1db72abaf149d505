"""Video search memory: does peak memory stay flat as a video gets longer?

Issue #21 promises that a video is streamed: memory must not grow with its length. This script
makes videos of 1×, 4× and 16× the length of one clip (``../shared/data/video/video_02.mp4``,
640×480, 29.97 frames/s, 17.4 s, looped and re-encoded with faceledger's own ``VideoWriter``),
then runs ``faceledger.usecases.search_video`` on each in a fresh process and prints that
process's peak resident memory (``ru_maxrss``) before and after the search, and the growth per
minute of video. The reference in the same run is what holding the decoded frames would cost
(every frame as RGB: width × height × 3 bytes), the design a streamed search avoids.

The gallery is a fresh workspace with the bundled London sample enrolled (``faceledger demo``'s
ten people), so the figure is the video pipeline's, not a large gallery's.

Run::

    .venv/bin/python benchmarks/video_memory.py [--clip PATH] [--loops 1,4,16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from faceledger import Settings
from faceledger.gallery import local_operator, open_workspace
from faceledger.usecases import CreateGallery, EnrolFolder, create_gallery, enrol_folder
from faceledger.usecases.video import VideoSearchRequest, search_video

ws_dir, listing, video = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ws = open_workspace(Settings(data_dir=ws_dir))
actor = local_operator(ws, "bench")
if not ws_dir.joinpath("enrolled").exists():
    create_gallery(ws, actor, CreateGallery("watch", "statute"))
    actor = local_operator(ws, "bench")  # now with the new gallery's grants
    enrol_folder(ws, actor, EnrolFolder("watch", listing))
    ws_dir.joinpath("enrolled").write_text("ok")
if video.name == "-":
    sys.exit(0)  # enrolment only: every measured search starts from the same state
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
res = search_video(ws, actor, VideoSearchRequest(video, ("watch",), "benchmark", "BENCH-1"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "before_kib": before, "after_kib": after, "seconds": time.perf_counter() - t0,
    "duration_s": res.video.duration_s, "frames_decoded": res.frames_decoded,
    "frames_sampled": res.frames_sampled, "tracks": res.tracks_searched,
}))
"""


def looped(clip: Path, loops: int, out: Path) -> Path:
    """``clip`` played ``loops`` times in a row, re-encoded (cached by name)."""
    from faceledger.video import VideoLimits, open_video
    from faceledger.video.encode import VideoWriter

    target = out / f"{clip.stem}-x{loops}.mp4"
    if target.exists():
        return target
    with open_video(clip, VideoLimits()) as probe:
        info = probe.info
    partial = target.with_suffix(".part.mp4")
    with VideoWriter(partial, info.width, info.height, info.fps or 25.0) as writer:
        for _ in range(loops):
            with open_video(clip, VideoLimits()) as reader:
                for frame in reader:
                    writer.write(frame.pixels)
    partial.rename(target)
    return target


def sample_listing(out: Path) -> Path:
    from importlib import resources

    images = sorted(Path(str(resources.files("faceledger") / "sample")).glob("*_neutral.jpg"))
    listing = out / "sample.csv"
    listing.write_text("image,subject\n" + "".join(f"{p},{p.stem.split('_')[0]}\n" for p in images))
    return listing


def _child(ws_dir: Path, listing: Path, video: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ws_dir), str(listing), video],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        sys.exit(f"the search failed:\n{proc.stderr}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=Path("../shared/data/video/video_02.mp4"))
    ap.add_argument("--loops", default="1,4,16")
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "faceledger-bench"
    )
    args = ap.parse_args()
    out = args.cache_dir / "video-memory"
    out.mkdir(parents=True, exist_ok=True)
    listing = sample_listing(out)
    ws_dir = out / "ws"
    _child(ws_dir, listing, "-")
    rows = []
    for loops in [int(x) for x in args.loops.split(",")]:
        t0 = time.perf_counter()
        video = looped(args.clip.resolve(), loops, out)
        made = time.perf_counter() - t0
        got = json.loads(_child(ws_dir, listing, str(video)).strip().splitlines()[-1])
        got["loops"] = loops
        rows.append(got)
        print(f"x{loops}: video made in {made:.0f} s; {json.dumps(got)}", flush=True)
    width, height = 640, 480
    print()
    print(
        f"{'video':>8} {'minutes':>8} {'frames':>7} {'sampled':>8} {'tracks':>7} "
        f"{'peak before MiB':>16} {'peak after MiB':>15} {'growth MiB':>11} "
        f"{'all frames held MiB':>20} {'seconds':>8}"
    )
    for r in rows:
        held = r["frames_decoded"] * width * height * 3 / 2**20
        print(
            f"{'x' + str(r['loops']):>8} {r['duration_s'] / 60:8.2f} {r['frames_decoded']:7d} "
            f"{r['frames_sampled']:8d} {r['tracks']:7d} {r['before_kib'] / 1024:16.0f} "
            f"{r['after_kib'] / 1024:15.0f} {(r['after_kib'] - r['before_kib']) / 1024:11.0f} "
            f"{held:20.0f} {r['seconds']:8.1f}"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        minutes = (last["duration_s"] - first["duration_s"]) / 60
        slope = (last["after_kib"] - first["after_kib"]) / 1024 / max(minutes, 1e-9)
        print(
            f"\npeak memory grew {slope:.1f} MiB per extra minute of video "
            f"(holding the frames would grow {30 * 60 * width * height * 3 / 2**20:.0f} MiB "
            f"per minute at 30 frames/s)"
        )
    print(f"this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
