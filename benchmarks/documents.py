"""Identity documents: faceledger's MRZ reader against PassportEye, same images, same run; and
document-portrait vs live-face FNMR.

Data: ``faceledger.document.synth.sample_set`` (deterministic): TD1 cards and TD3 passport
pages printed with ``../shared/data/london`` neutral portraits and an OCR-B MRZ, about 15 %
with a check digit printed wrong on purpose, photographed on a desk and degraded 0–2 times
(rotation, perspective, blur, JPEG, glare, low light, low resolution; severity 0.2–0.7).
The images are written as PNG under ``$TMPDIR/faceledger-bench/documents`` (reused while the
seed and count are unchanged) and both readers read those same files.

Scored for each reader (a read is its format, its own "valid" verdict and its fields):

- **reported valid**: documents printed with good check digits that the reader says are valid
  (its own verdict: every check digit it computed passes);
- **fully valid reads**: of those, the reads with *every field right* as well;
- **valid with a wrong field**: the reader says valid (every check digit it computed passes)
  but a field differs from what was printed, names included (names are protected by no check
  digit: a reader that calls such a read valid misleads its user) — must be 0 for faceledger;
- **broken documents flagged**: documents printed with a wrong check digit that the reader
  reports as not valid;
- per-field accuracy (exact after normalising filler and spaces), seconds per document, and
  everything by degradation kind (a document with two degradations counts under both).

PassportEye (MIT, Tesseract-based, https://github.com/konstantint/PassportEye) runs in its own
environment (``benchmarks/.venv-pe``, see ``_passporteye.py``); its "valid" is all of its
``valid_*`` check flags. FNMR: each document's portrait (``document.portrait.find_portrait``)
against the same person's smiling London photo at FMR 1e-3 with the default model; a document
whose portrait is not found counts as a non-match.

Run::

    .venv/bin/python benchmarks/documents.py [--n 200] [--seed 7] [--skip-pe] [--no-templates]
        [--no-fnmr] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from faceledger import Engine, Settings
from faceledger.document import glyphs
from faceledger.document.mrz import MrzFields
from faceledger.document.ocr import read_mrz
from faceledger.document.portrait import find_portrait
from faceledger.document.synth import sample_set
from faceledger.errors import FaceLedgerError
from faceledger.evaluate.intervals import wilson
from faceledger.io.decode import load_image
from faceledger.match import decide
from faceledger.types import Outcome

FIELDS = [f.name for f in dataclasses.fields(MrzFields)]
HERE = Path(__file__).resolve().parent
PE_PYTHON = HERE / ".venv-pe" / "bin" / "python"
FNMR_FMR = 1e-3


def norm(value: object) -> str:
    """Fields compared without filler or spacing differences."""
    return " ".join(str(value or "").upper().replace("<", " ").split())


def pe_read(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """PassportEye's ``to_dict()`` as a read: format, valid, fields."""
    if found is None:
        return None
    checks = [v for k, v in found.items() if k.startswith("valid_") and k != "valid_score"]
    fields = {
        "document_type": found.get("type"),
        "issuing_state": found.get("country"),
        "document_number": found.get("number"),
        "nationality": found.get("nationality"),
        "birth_date": found.get("date_of_birth"),
        "sex": found.get("sex"),
        "expiry_date": found.get("expiration_date"),
        "surname": found.get("surname"),
        "given_names": found.get("names"),
        "personal_number": found.get("personal_number") or found.get("optional1"),
        "optional_data_2": found.get("optional2"),
    }
    return {
        "format": found.get("mrz_type"),
        "valid": bool(checks) and all(bool(v) for v in checks),
        "fields": {k: norm(v) for k, v in fields.items()},
    }


def faceledger_read(path: Path) -> tuple[dict[str, Any] | None, float, str | None]:
    started = time.perf_counter()
    try:
        reading = read_mrz(load_image(path).pixels)
    except FaceLedgerError as exc:
        return None, time.perf_counter() - started, exc.code
    result = reading.result
    read = {
        "angle": reading.angle,
        "format": result.format.value,
        "valid": result.valid,
        "fields": {k: norm(v) for k, v in dataclasses.asdict(result.fields).items()},
    }
    return read, time.perf_counter() - started, None


def score(truth: dict[str, Any], read: dict[str, Any] | None) -> dict[str, Any]:
    want = {k: norm(v) for k, v in truth["fields"].items()}
    got = read["fields"] if read else {}
    right = {f: got.get(f, None) == want[f] for f in FIELDS}
    valid = bool(read and read["valid"])
    good = bool(truth["valid_check_digits"])
    return {
        "name": truth["name"],
        "wrong": {f: [got.get(f), want[f]] for f in FIELDS if not right[f]},
        "found": read is not None,
        "format_right": bool(read and read["format"] == truth["format"]),
        "valid": valid,
        "right": right,
        "fully_valid": good and valid and all(right.values()),
        "valid_wrong": valid and (not good or not all(right.values())),
        "broken_flagged": (not good) and read is not None and not valid,
    }


def rate(k: int, n: int) -> str:
    if n == 0:
        return "–"
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.3f} [{lo:.2f}, {hi:.2f}]"


def render(cache: Path, london: Path, n: int, seed: int) -> list[dict[str, Any]]:
    folder = cache / f"seed{seed}-n{n}"
    listing = folder / "truth.json"
    if listing.exists():
        return list(json.loads(listing.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = []
    for sample in sample_set(london, n, seed):
        path = folder / f"{sample.name}.png"
        Image.fromarray(sample.document.pixels).save(path)
        rows.append({**sample.truth(), "path": str(path)})
    listing.write_text(json.dumps(rows))
    print(f"rendered {n} documents in {time.perf_counter() - started:.0f} s", flush=True)
    return rows


def run_pe(cache: Path, rows: list[dict[str, Any]], skip: bool) -> dict[str, Any] | None:
    out = cache / f"pe-{len(rows)}-{Path(rows[0]['path']).parent.name}.json"
    if skip:
        return dict(json.loads(out.read_text())) if out.exists() else None
    if not PE_PYTHON.exists():
        print(f"!! no PassportEye environment at {PE_PYTHON}: see _passporteye.py")
        return None
    listing = cache / "pe-list.txt"
    listing.write_text("\n".join(r["path"] for r in rows) + "\n")
    subprocess.run([str(PE_PYTHON), str(HERE / "_passporteye.py"), listing, out], check=True)
    return dict(json.loads(out.read_text()))


def fnmr_rows(
    rows: list[dict[str, Any]], london: Path, angles: list[float]
) -> list[dict[str, Any]]:
    """``angles``: each document's MRZ direction as read, to turn it upright first."""
    engine = Engine(Settings())
    out = []
    for r, angle in zip(rows, angles, strict=True):
        live_path = london / "images" / r["portrait"].replace("_neutral", "_smiling")
        live = engine.embed(load_image(live_path))
        portrait = find_portrait(engine, load_image(Path(r["path"])), text_angle=angle)
        matched = False
        if portrait is not None and portrait.face.template is not None:
            assert live.template is not None
            d = decide(portrait.face.template, live.template, engine.card, FNMR_FMR)
            matched = d.outcome is Outcome.MATCH
        out.append(
            {
                "found": portrait is not None,
                "matched": matched,
                "small": bool(portrait and portrait.small),
                "inter_eye_px": portrait.face.quality.inter_eye_px if portrait else None,
            }
        )
    return out


def kinds_of(truth: dict[str, Any]) -> list[str]:
    return [d["kind"] for d in truth["degradations"]] or ["none"]


def table(
    rows: list[dict[str, Any]],
    readers: dict[str, list[dict[str, Any]]],
    pick: Callable[[dict[str, Any]], bool],
) -> None:
    """By degradation kind: fully valid (good documents) and valid-with-a-wrong-field."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if pick(r):
            for k in kinds_of(r):
                groups[k].append(i)
    names = list(readers)
    print(f"{'degradation':16s} {'n':>4s} " + " ".join(f"{n + ' fully valid':>26s}" for n in names))
    for kind in sorted(groups):
        idx = groups[kind]
        good = [i for i in idx if rows[i]["valid_check_digits"]]
        cells = []
        for n in names:
            k = sum(readers[n][i]["fully_valid"] for i in good)
            cells.append(f"{k:>3d}/{len(good):<3d} ({k / max(1, len(good)):.2f})")
        print(f"{kind:16s} {len(idx):4d} " + " ".join(f"{c:>26s}" for c in cells))


def report(
    rows: list[dict[str, Any]],
    readers: dict[str, list[dict[str, Any]]],
    seconds: dict[str, list[float]],
) -> dict[str, Any]:
    good = [i for i, r in enumerate(rows) if r["valid_check_digits"]]
    broken = [i for i, r in enumerate(rows) if not r["valid_check_digits"]]
    figures: dict[str, Any] = {}
    for name, scored in readers.items():
        fully = sum(scored[i]["fully_valid"] for i in good)
        said_valid = sum(scored[i]["valid"] for i in good)
        wrong = sum(s["valid_wrong"] for s in scored)
        flagged = sum(scored[i]["broken_flagged"] for i in broken)
        secs = sorted(seconds[name])
        print(f"\n== {name}")
        print(f"reported valid (good documents)      {rate(said_valid, len(good))}")
        print(f"fully valid reads (good documents)   {rate(fully, len(good))}")
        print(f"valid with a wrong field (all)       {rate(wrong, len(rows))}")
        print(f"broken check digit flagged           {rate(flagged, len(broken))}")
        for s in [s for s in scored if s["valid_wrong"]][:12]:
            print(f"   valid but wrong: {s['name']} {s['wrong']} (read, printed)")
        found = sum(s["found"] for s in scored)
        print(f"MRZ found                            {rate(found, len(rows))}")
        print(
            f"seconds per document                 mean {sum(secs) / len(secs):.2f}, "
            f"median {secs[len(secs) // 2]:.2f}, max {secs[-1]:.2f}"
        )
        per_field = {f: sum(s["right"][f] for s in scored) for f in FIELDS}
        print(
            "per-field accuracy                   "
            + ", ".join(f"{f} {k / len(rows):.2f}" for f, k in per_field.items())
        )
        figures[name] = {
            "reported_valid": [said_valid, len(good)],
            "fully_valid": [fully, len(good)],
            "valid_wrong": [wrong, len(rows)],
            "broken_flagged": [flagged, len(broken)],
            "seconds_mean": sum(secs) / len(secs),
            "per_field": per_field,
        }
    if len(readers) == 2:
        a, b = list(readers)
        only_a = sum(
            readers[a][i]["fully_valid"] and not readers[b][i]["fully_valid"] for i in good
        )
        only_b = sum(
            readers[b][i]["fully_valid"] and not readers[a][i]["fully_valid"] for i in good
        )
        fa, fb = figures[a]["fully_valid"][0], figures[b]["fully_valid"][0]
        points = 100 * (fa - fb) / max(1, len(good))
        print(
            f"\n{a} − {b}: {points:+.1f} points of fully valid reads "
            f"({only_a} documents only {a} read fully valid, {only_b} only {b})"
        )
        figures["difference_points"] = points
    print("\nby degradation kind (documents with good check digits):")
    table(rows, readers, lambda r: True)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-pe", action="store_true", help="reuse PassportEye's cached output")
    ap.add_argument("--no-fnmr", action="store_true")
    ap.add_argument(
        "--no-templates",
        action="store_true",
        help="faceledger without its OCR-B glyph templates (Tesseract's reading alone): the "
        "synthetic documents are printed in the very font the templates are drawn from",
    )
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "faceledger-bench"
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    london = args.data.resolve() / "london"
    cache = args.cache_dir / "documents"
    cache.mkdir(parents=True, exist_ok=True)
    rows = render(cache, london, args.n, args.seed)
    if args.no_templates:
        glyphs.available = lambda: False  # Tesseract alone, as before the font shipped

    started = time.perf_counter()
    pe = run_pe(cache, rows, args.skip_pe)
    pe_wall = time.perf_counter() - started
    fl_scored: list[dict[str, Any]] = []
    fl_secs: list[float] = []
    errors: defaultdict[str, int] = defaultdict(int)
    angles: list[float] = []
    for r in rows:
        read, secs, error = faceledger_read(Path(r["path"]))
        angles.append(read["angle"] if read else 0.0)
        fl_scored.append(score(r, read))
        fl_secs.append(secs)
        if error:
            errors[error] += 1
    readers = {"faceledger": fl_scored}
    seconds = {"faceledger": fl_secs}
    if pe is not None:
        readers["passporteye"] = [score(r, pe_read(pe[r["path"]]["mrz"])) for r in rows]
        seconds["passporteye"] = [float(pe[r["path"]]["seconds"]) for r in rows]
        print(f"PassportEye: {pe_wall:.0f} s wall ({'cached' if args.skip_pe else 'this run'})")
    print(f"faceledger errors: {dict(errors)}")
    figures = report(rows, readers, seconds)

    if not args.no_fnmr:
        fn = fnmr_rows(rows, london, angles)
        non = sum(not f["matched"] for f in fn)
        small = [f for f in fn if f["small"]]
        print(f"\n== document portrait vs live face, FMR {FNMR_FMR:g} (default model)")
        print(f"FNMR, all documents                  {rate(non, len(fn))}")
        print(
            f"portrait not found                   {rate(sum(not f['found'] for f in fn), len(fn))}"
        )
        small_non = sum(not f["matched"] for f in small)
        print(f"FNMR, portraits < 60 px between eyes {rate(small_non, len(small))}")
        by_kind: dict[str, list[bool]] = defaultdict(list)
        for r, f in zip(rows, fn, strict=True):
            for k in kinds_of(r):
                by_kind[k].append(not f["matched"])
        for k in sorted(by_kind):
            print(f"  {k:16s} FNMR {rate(sum(by_kind[k]), len(by_kind[k]))}")
        figures["fnmr"] = [non, len(fn)]
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
