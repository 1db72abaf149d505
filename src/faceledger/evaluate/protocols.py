"""Readers for the evaluation protocol CSVs: pairs, gallery/probes lists, per-person labels.

Formats (see ../shared/data/README.md and docs/evaluation.md): image paths are relative to
the CSV's own folder (absolute paths are kept). Every malformed row raises
:class:`~faceledger.errors.InvalidArgument` naming the file and line, before any work starts.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from faceledger.errors import InvalidArgument

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool
    group_a: str = ""
    group_b: str = ""
    line: int = 0


@dataclass(frozen=True)
class PairsProtocol:
    source: Path
    pairs: tuple[Pair, ...]
    has_groups: bool

    def images(self) -> list[Path]:
        """Every image once, in order of first appearance."""
        return list(dict.fromkeys(p for pair in self.pairs for p in (pair.a, pair.b)))


@dataclass(frozen=True)
class ListEntry:
    image: Path
    subject: str
    group: str = ""
    line: int = 0


@dataclass(frozen=True)
class ImageList:
    """A gallery or probe list (``image,subject[,group]``)."""

    source: Path
    entries: tuple[ListEntry, ...]
    has_groups: bool

    @property
    def subjects(self) -> set[str]:
        return {e.subject for e in self.entries}


@dataclass(frozen=True)
class ProtocolImage:
    image: Path
    labels: Mapping[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class LabelSet:
    """Images of pairwise different people with attribute columns (``image,<label>...``)."""

    source: Path
    images: tuple[ProtocolImage, ...]
    columns: tuple[str, ...]
    """Label column names, file order, without ``image``."""


class _Rows:
    """CSV rows as dicts with their line numbers, after checking the header."""

    def __init__(self, path: Path, required: tuple[str, ...]) -> None:
        self.path = path
        if not path.is_file():
            raise InvalidArgument(f"protocol file {path} does not exist")
        self.folder = path.resolve().parent
        self._resolved: dict[str, Path] = {}
        try:
            self._text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"cannot read {path}: {exc}") from exc
        reader = csv.reader(self._text.splitlines())
        try:
            header = next(reader)
        except StopIteration:
            raise InvalidArgument(f"{path} is empty (expected a header line)") from None
        self.header = [h.strip() for h in header]
        missing = [c for c in required if c not in self.header]
        if missing:
            raise InvalidArgument(
                f"{path}: line 1: header lacks column(s) {', '.join(missing)} "
                f"(found: {', '.join(self.header)})"
            )
        if len(set(self.header)) != len(self.header):
            raise InvalidArgument(f"{path}: line 1: duplicate column names in header")
        self._reader = reader

    def error(self, line: int, message: str) -> InvalidArgument:
        return InvalidArgument(f"{self.path}: line {line}: {message}")

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        for row in self._reader:
            line = self._reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(self.header):
                raise self.error(
                    line,
                    f"expected {len(self.header)} fields ({','.join(self.header)}), "
                    f"found {len(row)}",
                )
            yield line, {h: c.strip() for h, c in zip(self.header, row, strict=True)}

    def image(self, line: int, raw: str, check: bool) -> Path:
        if not raw:
            raise self.error(line, "empty image path")
        path = self._resolved.get(raw)
        if path is None:
            p = Path(raw)
            path = (p if p.is_absolute() else self.folder / p).resolve()
            self._resolved[raw] = path
        if check and not path.is_file():
            raise self.error(line, f"image {raw!r} not found (looked for {path})")
        return path


def _flag(rows: _Rows, line: int, raw: str) -> bool:
    v = raw.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise rows.error(line, f"'same' must be 1 or 0, found {raw!r}")


def read_pairs(path: Path, *, check_files: bool = True) -> PairsProtocol:
    """``a,b,same[,group_a,group_b]``; ``same`` is 1 (genuine) or 0 (impostor)."""
    rows = _Rows(path, ("a", "b", "same"))
    has_a, has_b = "group_a" in rows.header, "group_b" in rows.header
    if has_a != has_b:
        raise InvalidArgument(f"{path}: line 1: give both group_a and group_b, or neither")
    pairs: list[Pair] = []
    for line, row in rows:
        pairs.append(
            Pair(
                a=rows.image(line, row["a"], check_files),
                b=rows.image(line, row["b"], check_files),
                same=_flag(rows, line, row["same"]),
                group_a=row.get("group_a", ""),
                group_b=row.get("group_b", ""),
                line=line,
            )
        )
    if not pairs:
        raise InvalidArgument(f"{path} has no pairs")
    return PairsProtocol(path, tuple(pairs), has_a)


def read_image_list(path: Path, *, check_files: bool = True) -> ImageList:
    """``image,subject[,group]``: a gallery or a probe list."""
    rows = _Rows(path, ("image", "subject"))
    has_groups = "group" in rows.header
    entries: list[ListEntry] = []
    for line, row in rows:
        if not row["subject"]:
            raise rows.error(line, "empty subject")
        entries.append(
            ListEntry(
                rows.image(line, row["image"], check_files),
                row["subject"],
                row.get("group", ""),
                line,
            )
        )
    if not entries:
        raise InvalidArgument(f"{path} lists no images")
    return ImageList(path, tuple(entries), has_groups)


def read_labels(path: Path, *, check_files: bool = True) -> LabelSet:
    """``image,<label columns>``: every row a different person (e.g. utkface_subset)."""
    rows = _Rows(path, ("image",))
    columns = tuple(h for h in rows.header if h != "image")
    seen: dict[Path, int] = {}
    images: list[ProtocolImage] = []
    for line, row in rows:
        img = rows.image(line, row["image"], check_files)
        if img in seen:
            raise rows.error(line, f"image {row['image']!r} already listed on line {seen[img]}")
        seen[img] = line
        images.append(ProtocolImage(img, {c: row[c] for c in columns}, line))
    if len(images) < 2:
        raise InvalidArgument(f"{path} needs at least two images to form impostor pairs")
    return LabelSet(path, tuple(images), columns)
