"""The video reference: face_recognition's own every-frame loop, as its video example runs it.

Runs in its own environment (benchmarks/.venv-fr, see benchmarks/README.md, "Throughput"),
never imports faceledger. It follows face_recognition's ``examples/facerec_from_video_file.py``:
for every frame, ``face_recognition.face_locations(rgb)`` (defaults: HOG, upsample 1), then
``face_recognition.face_encodings(rgb, locations)``; each encoding is compared with the known
faces by ``face_recognition.face_distance`` and labelled with the closest known face whose
distance is within the tolerance (0.6, the library's default), else ``null``. (The example
itself asks ``compare_faces`` at 0.50 and takes the first match; ``--tolerance`` changes it.)

Frames are decoded with PyAV (``pip install av`` into benchmarks/.venv-fr), as RGB24, in the
same process, and the decoding time is counted. ``--every N`` runs the loop on every Nth frame
only (every frame is still decoded, as a player would).

    benchmarks/.venv-fr/bin/python benchmarks/_fr_video.py known.json video.mp4 out.json [--every N]

known.json maps labels to enrolment images, ``{"label": "/path/to/enrol.jpg", ...}``; each is
encoded from its first face (a label whose image has no face is left out, and listed under
``enrol_failed``). out.json: ``seconds`` (wall time of everything: import, enrolment, decoding,
detection, encoding, matching), ``load_seconds`` (import, which loads dlib's models),
``enrol_seconds``, ``decode_seconds``, ``loop_seconds`` (decoding plus the per-frame work, the
figure to divide frames by), ``frames`` (decoded), ``frames_processed``, ``fps`` (the video's),
``detections`` (``frame`` index, ``t`` = frame / fps, ``box`` [left, top, right, bottom],
``label``, ``distance`` to the closest known face) and ``peak_rss_kb``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("known", type=Path, help='JSON {"label": "/path/to/enrol.jpg", ...}')
    ap.add_argument("video", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--every", type=int, default=1, help="process every Nth frame (default 1)")
    ap.add_argument("--tolerance", type=float, default=0.6)
    args = ap.parse_args()
    if args.every < 1:
        ap.error("--every must be at least 1")

    t0 = time.perf_counter()
    import av
    import face_recognition  # loads its dlib models at import, part of the cost
    import numpy as np

    t_loaded = time.perf_counter()
    labels: list[str] = []
    known: list[np.ndarray] = []
    enrol_failed: list[str] = []
    for label, path in json.loads(args.known.read_text()).items():
        found = face_recognition.face_encodings(face_recognition.load_image_file(path))
        if found:
            labels.append(label)
            known.append(found[0])
        else:
            enrol_failed.append(label)
    t_enrolled = time.perf_counter()

    detections: list[dict[str, object]] = []
    decode_seconds = 0.0
    frames = processed = 0
    with av.open(str(args.video)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        decoder = container.decode(video=0)
        while True:
            td = time.perf_counter()
            frame = next(decoder, None)
            if frame is None:
                decode_seconds += time.perf_counter() - td
                break
            index = frames
            frames += 1
            if index % args.every:
                decode_seconds += time.perf_counter() - td
                continue
            rgb = frame.to_ndarray(format="rgb24")
            decode_seconds += time.perf_counter() - td
            processed += 1
            locations = face_recognition.face_locations(rgb)
            encodings = face_recognition.face_encodings(rgb, locations)
            for (top, right, bottom, left), encoding in zip(locations, encodings, strict=True):
                label: str | None = None
                distance: float | None = None
                if known:
                    distances = face_recognition.face_distance(known, encoding)
                    best = int(np.argmin(distances))
                    distance = float(distances[best])
                    if distance <= args.tolerance:
                        label = labels[best]
                detections.append(
                    {
                        "frame": index,
                        "t": round(index / fps, 4) if fps else None,
                        "box": [int(left), int(top), int(right), int(bottom)],
                        "label": label,
                        "distance": distance,
                    }
                )
    t1 = time.perf_counter()
    out = {
        "seconds": t1 - t0,
        "load_seconds": t_loaded - t0,
        "enrol_seconds": t_enrolled - t_loaded,
        "decode_seconds": decode_seconds,
        "loop_seconds": t1 - t_enrolled,
        "frames": frames,
        "frames_processed": processed,
        "every": args.every,
        "fps": fps,
        "tolerance": args.tolerance,
        "known": labels,
        "enrol_failed": enrol_failed,
        "detections": detections,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    args.out.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
