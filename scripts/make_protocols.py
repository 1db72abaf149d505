"""Write the project's protocol CSVs (paths only, never image copies) from ../shared/data.

    python scripts/make_protocols.py [--data ../shared/data] [--out protocols]

- ``calibration_utkface_adults.csv``: UTKFace subset images labelled 18 or older
  (``image,subject,age,gender,race``; every image its own subject). Children are left out
  of the default calibration: their impostor pairs score far higher (measured by
  ``faceledger eval impostors``), so the engine makes no claim for them. The known repeats
  (``UTK_SAME_PERSON``) are left out too: a pair of two photos of one person is no impostor
  pair, and before issue #27 such pairs put the table's top score at 1.0, so rates below
  ~1e-5 described duplicates rather than impostors.
- ``openset_{dev,test}[_multi]_{gallery,probes}.csv``: the open-set 1:N dev protocol (issue 9),
  two disjoint splits: ``dev`` to choose and calibrate the method on, ``test`` held out to
  report on. See :func:`openset_protocols` and benchmarks/README.md "Open-set 1:N".
"""

from __future__ import annotations

import argparse
import csv
import os
from collections import defaultdict
from pathlib import Path

ADULT_AGE = 18

UTK_SAME_PERSON = frozenset(
    {
        # UTKFace shows some (mostly famous) people twice under different file names. Every
        # pair of adult images scoring >= 0.965 with dlib-resnet-v1 was looked at; the second
        # image of each pair judged to be the same person is left out of the 1:N protocols,
        # since "every image a different person" would count those as false positives.
        "male_indian_0468.jpg",  # = male_indian_0466
        "female_black_0888.jpg",  # = female_black_0775
        "female_black_0774.jpg",  # = female_black_0765
        "female_black_0827.jpg",  # = female_black_0765
        "female_black_0865.jpg",  # = female_black_0790
        "male_indian_0588.jpg",  # = male_indian_0527
        "female_white_0699.jpg",  # = female_black_0757 (labelled with another race)
        "female_indian_1160.jpg",  # = female_indian_1144
        "female_indian_1145.jpg",  # = female_indian_1132
        "female_indian_1183.jpg",  # = female_indian_1148
        "female_indian_1138.jpg",  # = female_indian_1059
        "male_black_0287.jpg",  # = male_black_0160
        "female_white_0726.jpg",  # = female_white_0665
        "female_indian_1168.jpg",  # = female_indian_1053
    }
)


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
            if int(r["age"]) >= ADULT_AGE and Path(r["image"]).name not in UTK_SAME_PERSON:
                rel = os.path.relpath(src / r["image"], out)
                rows.append([rel, f"utk:{r['image']}", r["age"], r["gender"], r["race"]])
    write_csv(
        out / "calibration_utkface_adults.csv",
        ["image", "subject", "age", "gender", "race"],
        rows,
    )


def openset_protocols(data: Path, out: Path) -> None:
    """Open-set 1:N protocols in two disjoint splits of people, ``dev`` and ``test``.

    Each split holds half of the people of every source, assigned by a fixed rule:
    - London Set (102 adults, colour studio portraits): odd ids → dev, even → test; the
      neutral image is enrolled, the smiling one is a mated probe.
    - ORL (40 adults, 92×112 greyscale): s1, s3, … → dev, s2, s4, … → test; image 1 enrolled,
      images 2–10 mated probes (``_multi``: images 1–3 enrolled, 4–10 probes).
    - johns (5 men, LFW-style crops): 1st, 3rd, 5th name → dev, others → test; the first image
      enrolled, the rest mated probes (``_multi``: first three enrolled).
    - UTKFace adults (>= 18, every image its own person, known repeats left out): within each
      gender × race group in file order, images alternate dev/test, and within a split
      alternate enrolled distractor / non-mated probe.
    Paths are relative to ``out``; the ``group`` column names the source (and UTKFace's
    gender_race), so ``eval identify`` reports each part.
    """
    rows: dict[tuple[str, bool, str], list[list[str]]] = defaultdict(list)

    def add(
        split: str, role: str, path: Path, subject: str, group: str, multi: bool | None
    ) -> None:
        rel = os.path.relpath(path, out)
        for m in (False, True) if multi is None else (multi,):
            rows[(split, m, role)].append([rel, subject, group])

    london = data / "london"
    with (london / "subjects.csv").open(encoding="utf-8") as fh:
        people = [r["subject"] for r in csv.DictReader(fh)]
    for sid in people:
        split = "dev" if int(sid) % 2 == 1 else "test"
        add(split, "gallery", london / f"images/{sid}_neutral.jpg", f"london:{sid}", "london", None)
        add(split, "probes", london / f"images/{sid}_smiling.jpg", f"london:{sid}", "london", None)
    for n in range(1, 41):
        split = "dev" if n % 2 == 1 else "test"
        for i in range(1, 11):
            img = data / f"orl/s{n}/{i}.pgm"
            add(split, "gallery" if i == 1 else "probes", img, f"orl:s{n}", "orl", False)
            add(split, "gallery" if i <= 3 else "probes", img, f"orl:s{n}", "orl", True)
    johns = sorted(p for p in (data / "johns").iterdir() if p.is_dir())
    for k, person in enumerate(johns):
        split = "dev" if k % 2 == 0 else "test"
        for i, img in enumerate(sorted(person.glob("*.jpg"))):
            subject = f"johns:{person.name}"
            add(split, "gallery" if i == 0 else "probes", img, subject, "johns", False)
            add(split, "gallery" if i < 3 else "probes", img, subject, "johns", True)
    seen: dict[str, int] = defaultdict(int)
    with (data / "utkface_subset/labels.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            name = Path(r["image"]).name
            if int(r["age"]) < ADULT_AGE or name in UTK_SAME_PERSON:
                continue
            group = f"{r['gender']}_{r['race']}"
            c = seen[group]
            seen[group] += 1
            split = "dev" if c % 2 == 0 else "test"
            role = "gallery" if (c // 2) % 2 == 0 else "probes"
            img = data / "utkface_subset" / r["image"]
            add(split, role, img, f"utk:{name}", f"utkface_{group}", None)
    for (split, multi, role), body in sorted(rows.items()):
        name = f"openset_{split}{'_multi' if multi else ''}_{role}.csv"
        write_csv(out / name, ["image", "subject", "group"], body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("protocols"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    utkface_adults(args.data, args.out)
    openset_protocols(args.data, args.out)


if __name__ == "__main__":
    main()
