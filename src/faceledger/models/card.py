"""The model card: identity, files with checksums, input geometry, dimension, calibration."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from faceledger.errors import ModelError, ModelFileError
from faceledger.models.calibration import CalibrationTable, OpenSetCalibration


@dataclass(frozen=True)
class ModelFile:
    """A weight file: where it lives and the sha256 it must have."""

    role: str
    """e.g. ``embedder``, ``landmarks``, ``detector``."""
    filename: str
    sha256: str
    package: str | None = None
    """Python package holding the file (resolved with importlib, never imported)."""
    path: str | None = None
    """Absolute or card-relative path when not shipped inside a package."""

    def locate(self, card_dir: Path | None = None) -> Path:
        if self.package:
            spec = importlib.util.find_spec(self.package)
            if spec is None or not spec.submodule_search_locations:
                raise ModelFileError(
                    f"package {self.package!r} holding {self.filename} is not installed"
                )
            for root in spec.submodule_search_locations:
                candidate = Path(root) / self.filename
                if candidate.is_file():
                    return candidate
            raise ModelFileError(f"{self.filename} not found in package {self.package!r}")
        if self.path:
            p = Path(self.path)
            if not p.is_absolute() and card_dir is not None:
                p = card_dir / p
            if not p.is_file():
                raise ModelFileError(f"model file {p} does not exist")
            return p
        raise ModelFileError(f"model file {self.filename} has neither package nor path")

    def verified_path(self, card_dir: Path | None = None) -> Path:
        """Locate the file and check its sha256 (cached per path, size and mtime)."""
        p = self.locate(card_dir)
        st = p.stat()
        actual = _sha256(str(p), st.st_size, st.st_mtime_ns)
        if actual != self.sha256:
            raise ModelFileError(
                f"checksum mismatch for {p}: expected {self.sha256}, found {actual}"
            )
        return p


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class AlignSpec:
    """Where the five landmarks must land in the model's input chip (chip pixels)."""

    size: int
    reference: tuple[tuple[float, float], ...]
    """Chip coordinates for the five landmarks in :class:`faceledger.types.Landmarks` order."""

    @classmethod
    def from_normalised(
        cls, size: int, padding: float, points: tuple[tuple[float, float], ...]
    ) -> AlignSpec:
        """Reference points given in a 0..1 face frame, expanded by ``padding`` on each side."""
        ref = tuple(
            ((padding + x) / (2 * padding + 1) * size, (padding + y) / (2 * padding + 1) * size)
            for x, y in points
        )
        return cls(size, ref)


@dataclass(frozen=True)
class ModelCard:
    id: str
    version: str
    name: str
    backend: str
    """Embedder backend key: ``dlib`` or ``onnx``."""
    dimension: int
    files: tuple[ModelFile, ...]
    align: AlignSpec
    licence: str = ""
    description: str = ""
    input_mean: float = 0.0
    input_std: float = 1.0
    calibration: CalibrationTable | None = None
    card_dir: Path | None = None
    openset: OpenSetCalibration | None = None
    """Calibration of normalised 1:N scores (``match.normalise``); None: raw scores only."""
    flip_average: bool = False
    """Part of the template recipe: a template is the mean of the aligned chip's embedding and
    its mirror image's. Two cards with the same weights but different recipes have different
    ids, galleries and calibrations: their templates are never compared with each other."""

    def file(self, role: str) -> ModelFile:
        for f in self.files:
            if f.role == role:
                return f
        raise ModelFileError(f"model {self.id} has no file with role {role!r}")

    def with_calibration(self, table: CalibrationTable) -> ModelCard:
        return replace(self, calibration=table)

    def with_openset(self, openset: OpenSetCalibration | None) -> ModelCard:
        return replace(self, openset=openset)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "name": self.name,
            "backend": self.backend,
            "dimension": self.dimension,
            "flip_average": self.flip_average,
            "licence": self.licence,
            "description": self.description,
            "input": {
                "size": self.align.size,
                "reference": [list(p) for p in self.align.reference],
                "mean": self.input_mean,
                "std": self.input_std,
            },
            "files": [{k: v for k, v in vars(f).items() if v is not None} for f in self.files],
            "calibration": self.calibration.to_json() if self.calibration else None,
            **({"openset": self.openset.to_json()} if self.openset else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], card_dir: Path | None = None) -> ModelCard:
        try:
            inp = data["input"]
            cal = data.get("calibration")
            openset = data.get("openset")
            return cls(
                id=str(data["id"]),
                version=str(data["version"]),
                name=str(data.get("name", data["id"])),
                backend=str(data["backend"]),
                dimension=int(data["dimension"]),
                flip_average=_flag(data.get("flip_average", False)),
                files=tuple(ModelFile(**f) for f in data["files"]),
                align=AlignSpec(
                    int(inp["size"]), tuple((float(x), float(y)) for x, y in inp["reference"])
                ),
                licence=str(data.get("licence", "")),
                description=str(data.get("description", "")),
                input_mean=float(inp.get("mean", 0.0)),
                input_std=float(inp.get("std", 1.0)),
                calibration=CalibrationTable.from_json(cal) if cal else None,
                card_dir=card_dir,
                openset=OpenSetCalibration.from_json(openset) if openset else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed model card: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"cannot read model card {path}: {exc}") from exc
        return cls.from_json(data, card_dir=path.parent)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"flip_average must be true or false, not {value!r}")
    return value
