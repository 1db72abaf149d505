"""The reference for ``throughput.py``: face_recognition as its users run it, one image at a time.

Runs in its own environment (see benchmarks/README.md, "Throughput"), never imports
faceledger. Reads a JSON list of image paths, writes timings, peak memory and each image's
first encoding (``face_recognition.face_encodings``, default settings) as JSON.

    benchmarks/.venv-fr/bin/python benchmarks/_fr_reference.py paths.json out.json
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    paths = json.loads(Path(sys.argv[1]).read_text())
    t0 = time.perf_counter()
    import face_recognition  # loads its dlib models at import, part of the cost

    t_loaded = time.perf_counter()
    encodings: dict[str, list[float] | None] = {}
    faces: dict[str, int] = {}
    for p in paths:
        image = face_recognition.load_image_file(p)
        found = face_recognition.face_encodings(image)
        faces[p] = len(found)
        encodings[p] = [float(x) for x in found[0]] if found else None
    t1 = time.perf_counter()
    out = {
        "seconds": t1 - t0,
        "load_seconds": t_loaded - t0,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "faces": faces,
        "encodings": encodings,
    }
    Path(sys.argv[2]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
