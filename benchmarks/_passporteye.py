"""PassportEye's reading of a list of images, as JSON (run in its own environment).

Run by ``benchmarks/documents.py`` with ``benchmarks/.venv-pe/bin/python``::

    python3.11 -m venv benchmarks/.venv-pe && benchmarks/.venv-pe/bin/pip install passporteye
    benchmarks/.venv-pe/bin/python benchmarks/_passporteye.py LIST.txt OUT.json

Each line of LIST.txt is an image path; OUT.json maps each path to PassportEye's ``to_dict()``
(or null when it found no MRZ) and the seconds its ``read_mrz`` took. Only the MRZ is read
(PassportEye's default; no face extraction).
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def main() -> None:
    from passporteye import read_mrz  # type: ignore[import-not-found]

    warnings.simplefilter("ignore")  # scikit-image deprecation noise
    with open(sys.argv[1], encoding="utf-8") as f:
        paths = [p for p in f.read().splitlines() if p]
    out = {}
    for path in paths:
        started = time.perf_counter()
        try:
            mrz = read_mrz(path)
            found = None if mrz is None else dict(mrz.to_dict())
            error = None
        except Exception as exc:  # a crash on one image is that image's failure
            found, error = None, f"{type(exc).__name__}: {exc}"
        out[path] = {"mrz": found, "error": error, "seconds": time.perf_counter() - started}
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
