"""Labelled image sets: a folder with one sub-folder per subject, or a CSV ``image,subject,...``.

Used by bulk enrolment and calibration. CSV paths are relative to the CSV's folder; extra
columns are kept as attributes. A CSV without a ``subject`` column lists images of distinct
people (e.g. ``utkface_subset/labels.csv``): each row becomes its own subject.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from faceledger.errors import InvalidArgument

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
)


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    subject: str
    attributes: dict[str, str] = field(default_factory=dict)
    line: int = 0
    """1-based CSV line (0 for folder sources)."""


def read_image_set(source: Path) -> list[LabelledImage]:
    if source.is_dir():
        return list(_read_folder(source))
    if source.is_file():
        return list(_read_csv(source))
    raise InvalidArgument(f"{source}: no such folder or CSV file")


def _read_folder(root: Path) -> Iterator[LabelledImage]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not subdirs:
        raise InvalidArgument(f"{root}: expected one sub-folder per subject")
    for d in subdirs:
        for p in sorted(d.iterdir()):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                yield LabelledImage(p, d.name)


def _read_csv(path: Path) -> Iterator[LabelledImage]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{path}: cannot read CSV ({exc})") from exc
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "image" not in reader.fieldnames:
        raise InvalidArgument(f"{path}: CSV needs a header with an 'image' column")
    has_subject = "subject" in reader.fieldnames
    base = path.parent
    for row in reader:
        line = reader.line_num
        image = (row.get("image") or "").strip()
        if not image:
            raise InvalidArgument(f"{path}:{line}: empty image path")
        subject = (row.get("subject") or "").strip() if has_subject else f"{path.stem}:{image}"
        if not subject:
            raise InvalidArgument(f"{path}:{line}: empty subject")
        attrs = {
            k: (v or "").strip()
            for k, v in row.items()
            if k not in ("image", "subject") and k is not None
        }
        yield LabelledImage(base / image, subject, attrs, line)
