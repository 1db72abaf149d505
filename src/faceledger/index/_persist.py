"""Atomic, pickle-free index files: a JSON header plus named numpy arrays in one ``.npz``.

Written to a temp file in the same folder, fsync'd, then renamed over the target, so a crash
at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from faceledger.errors import IntegrityError, InvalidArgument, NotFound

FORMAT = "faceledger-index"
VERSION = 1
_HEADER = "__header__"


def atomic_write_bytes(path: str | Path, write: Any) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync it, rename it over ``path``."""
    target = Path(path)
    if target.is_dir():
        raise InvalidArgument(f"{target} is a folder, expected a file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_index_file(
    path: str | Path, header: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]
) -> None:
    meta = {"format": FORMAT, "version": VERSION, **header}
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)

    payload: dict[str, Any] = {_HEADER: blob, **arrays}

    def write(f: Any) -> None:
        np.savez(f, **payload)

    atomic_write_bytes(path, write)


def read_index_file(
    path: str | Path, kind: str
) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """The header and arrays of an index file of ``kind`` (``IntegrityError`` when damaged)."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no index file at {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        meta = json.loads(arrays.pop(_HEADER).tobytes().decode())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise IntegrityError(f"index file {p} is damaged or not an index: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IntegrityError(f"{p} is not a faceledger index file")
    if meta.get("version") != VERSION:
        raise IntegrityError(f"{p}: unsupported index file version {meta.get('version')!r}")
    if meta.get("kind") != kind:
        raise IntegrityError(f"{p} holds a {meta.get('kind')!r} index, expected {kind!r}")
    return meta, arrays


def peek_kind(path: str | Path) -> str:
    """The ``kind`` recorded in an index file (to dispatch to the right backend)."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no index file at {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(z[_HEADER].tobytes().decode())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise IntegrityError(f"index file {p} is damaged or not an index: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IntegrityError(f"{p} is not a faceledger index file")
    kind = meta.get("kind")
    if not isinstance(kind, str):
        raise IntegrityError(f"{p}: index file without a kind")
    return kind


def require(arrays: dict[str, npt.NDArray[Any]], name: str, path: str | Path) -> npt.NDArray[Any]:
    if name not in arrays:
        raise IntegrityError(f"index file {path} lacks the {name!r} array")
    return arrays[name]
