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


def read_image_set(
    source: Path, skipped: list[tuple[str, str]] | None = None
) -> list[LabelledImage]:
    """The images of a folder (one sub-folder per subject) or CSV. What a folder holds that is
    not taken (files beside the subject folders, nested folders, links that lead nowhere,
    FIFOs, files that are not images) is appended to ``skipped`` as (path, why)."""
    if source.is_dir():
        return list(_read_folder(source, [] if skipped is None else skipped))
    if source.is_file():
        return list(_read_csv(source))
    raise InvalidArgument(f"{source}: no such folder or CSV file")


def _read_folder(root: Path, skipped: list[tuple[str, str]]) -> Iterator[LabelledImage]:
    subdirs = []
    for p in sorted(root.iterdir()):
        if p.is_dir():
            subdirs.append(p)
        else:
            skipped.append((str(p), "not in a subject folder"))
    if not subdirs:
        raise InvalidArgument(f"{root}: expected one sub-folder per subject")
    for d in subdirs:
        for p in sorted(d.iterdir()):
            why = _not_an_image(p)
            if why is None:
                yield LabelledImage(p, d.name)
            else:
                skipped.append((str(p), why))


def _not_an_image(p: Path) -> str | None:
    """Why ``p`` in a subject folder is not enrolled, or None for an image file."""
    if p.is_dir():
        return "nested folder (only images directly in a subject folder are enrolled)"
    if not p.is_file():  # FIFO, socket, device, a link that loops or leads nowhere
        return "not a regular file"
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        return "not an image file (by its suffix)"
    return None


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
