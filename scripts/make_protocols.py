"""Write the project's protocol CSVs (paths only, never image copies) from ../shared/data.

    python scripts/make_protocols.py [--data ../shared/data] [--out protocols]

- ``calibration_utkface_adults.csv``: UTKFace subset images labelled 18 or older
  (``image,subject,age,gender,race``; every image its own subject). Children are left out
  of the default calibration: their impostor pairs score far higher (measured by
  ``faceledger eval impostors``), so the engine makes no claim for them.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

ADULT_AGE = 18


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    print(f"wrote {path} ({len(rows)} rows)")


def utkface_adults(data: Path, out: Path) -> None:
    src = data / "utkface_subset"
    rows = []
    with (src / "labels.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if int(r["age"]) >= ADULT_AGE:
                rel = os.path.relpath(src / r["image"], out)
                rows.append([rel, f"utk:{r['image']}", r["age"], r["gender"], r["race"]])
    write_csv(
        out / "calibration_utkface_adults.csv",
        ["image", "subject", "age", "gender", "race"],
        rows,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("protocols"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    utkface_adults(args.data, args.out)


if __name__ == "__main__":
    main()
