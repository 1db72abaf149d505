"""Which runtime serves a model: dlib's ResNet on onnxruntime by default, dlib's own as fallback.

The built-in card's network is dlib's ResNet. Its weights ship in ``face_recognition_models``;
on first use they are converted to an ONNX graph (``dlib_export.build_model_bytes``, about a
second, nothing downloaded), checked against dlib's own runtime on faces of the bundled sample
(templates within 1e-4 cosine), and cached in the per-user cache folder beside a manifest with
the graph's sha256. Every later load reads the file, checks that sha256 and rebuilds when the
file is missing, truncated or changed. The cache guards against corruption and half-written
files; whoever can write to it could also write to the installed package itself.

``Settings.runtime``:

- ``auto`` (default): onnxruntime when it imports and the graph builds, else dlib's runtime,
  with the reason in :attr:`RuntimeChoice.note` and a logged warning;
- ``onnx``: onnxruntime or a :class:`ModelError`;
- ``dlib``: dlib's own runtime, the reference the ONNX graph is checked against.

dlib's jittering (``Settings.jitter``) exists only in dlib's runtime, which it then selects.
Cards whose backend is already ``onnx`` are served by onnxruntime whatever the setting.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from faceledger.config import Settings
from faceledger.embed.base import Embedder, make_embedder
from faceledger.errors import ModelError
from faceledger.models.card import ModelCard

log = logging.getLogger(__name__)

BUILDER_VERSION = 1
"""Bump when the graph builder changes: cached graphs of other versions are not reused."""
MANIFEST = "manifest.json"
PARITY_FACES = 3
"""Sample images whose faces check a freshly built graph against dlib's runtime."""


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: str
    """``onnxruntime`` or ``dlib``."""
    card: ModelCard
    """The card the embedder runs: an ONNX card with the source's id, or the card itself."""
    note: str
    """Where the graph came from, or why dlib's runtime serves the model."""
    model: bytes | None = None
    """The verified ONNX graph (None for dlib's runtime)."""


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "faceledger"


def graph_dir(source: ModelCard, cache_dir: Path) -> Path:
    """The cache folder of ``source``'s graph, keyed by its weights and the builder version."""
    sha = source.file("embedder").sha256
    return cache_dir / "models" / source.id / f"{sha[:16]}-b{BUILDER_VERSION}"


def choose_runtime(card: ModelCard, settings: Settings) -> RuntimeChoice:
    """The runtime that serves ``card`` under ``settings`` (building the graph if needed)."""
    if card.backend != "dlib":
        return RuntimeChoice("onnxruntime" if card.backend == "onnx" else card.backend, card, "")
    if settings.runtime == "dlib":
        return RuntimeChoice("dlib", card, "dlib's runtime, as asked (Settings.runtime=dlib)")
    if settings.jitter:
        return RuntimeChoice("dlib", card, "dlib's runtime: jitter exists only there")
    try:
        return _onnx_choice(card, settings.cache_dir or default_cache_dir())
    except ModelError as exc:
        if settings.runtime == "onnx":
            raise
        note = f"dlib's runtime (fallback, several times slower): {exc}"
        log.warning("model %s: %s", card.id, note)
        return RuntimeChoice("dlib", card, note)


def runtime_embedder(
    card: ModelCard, settings: Settings, *, threads: int | None = None
) -> tuple[Embedder, RuntimeChoice]:
    """The embedder for ``card`` on the runtime :func:`choose_runtime` picks.

    ``threads`` pins onnxruntime's intra-op threads (one per worker process in bulk work).
    """
    choice = choose_runtime(card, settings)
    if choice.runtime == "onnxruntime":
        from faceledger.embed.onnx import OnnxEmbedder

        embedder: Embedder = OnnxEmbedder(choice.card, threads=threads, model=choice.model)
        # the session holds the graph now: callers keeping the choice need not hold 22 MB more
        choice = replace(choice, model=None)
    else:
        embedder = make_embedder(card, jitter=settings.jitter)
    return embedder, choice


def _onnx_choice(source: ModelCard, cache_dir: Path) -> RuntimeChoice:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"onnxruntime cannot be imported ({exc})") from exc
    folder = graph_dir(source, cache_dir)
    found = _load_verified(folder)
    if found is not None:
        data, sha = found
        return _choice(source, folder, data, sha, f"ONNX graph cached in {folder}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            found = _load_verified(folder)  # another process may have built it meanwhile
            if found is None:
                found = _build(source, folder)
    except OSError as exc:  # an unwritable cache: build in memory for this process
        data = _build_checked(source, folder)
        sha = hashlib.sha256(data).hexdigest()
        note = f"ONNX graph built in memory (cache {folder} not writable: {exc.strerror})"
        return _choice(source, folder, data, sha, note)
    data, sha = found
    return _choice(source, folder, data, sha, f"ONNX graph built and cached in {folder}")


def _choice(source: ModelCard, folder: Path, data: bytes, sha: str, note: str) -> RuntimeChoice:
    from faceledger.embed.dlib_export import onnx_card

    return RuntimeChoice("onnxruntime", onnx_card(source, source.id, sha, folder), note, data)


def _load_verified(folder: Path) -> tuple[bytes, str] | None:
    """The cached graph and its sha256 when the manifest names it and the bytes match."""
    from faceledger.embed.dlib_export import ONNX_FILENAME

    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        data = (folder / ONNX_FILENAME).read_bytes()
    except (OSError, ValueError):
        return None
    sha = hashlib.sha256(data).hexdigest()
    if not isinstance(manifest, dict) or manifest.get("sha256") != sha:
        if manifest:
            log.warning("cached ONNX graph in %s does not match its manifest: rebuilding", folder)
        return None
    return data, sha


def _build_checked(source: ModelCard, folder: Path) -> bytes:
    """Build the graph and refuse it unless it gives dlib's templates on sample faces."""
    from faceledger.embed.dlib_export import (
        PARITY_MIN_COSINE,
        build_model_bytes,
        onnx_card,
        parity_cosines,
        sample_faces,
    )
    from faceledger.embed.onnx import OnnxEmbedder

    data = build_model_bytes(source)
    card = onnx_card(source, source.id, hashlib.sha256(data).hexdigest(), folder)
    faces = sample_faces(source, PARITY_FACES)
    if faces:
        candidate = OnnxEmbedder(card, model=data)
        worst = float(parity_cosines(source, card, faces, candidate=candidate).min())
        if worst < PARITY_MIN_COSINE:
            raise ModelError(
                f"the ONNX graph disagrees with dlib (worst template cosine {worst:.6f})"
            )
    return data


def _build(source: ModelCard, folder: Path) -> tuple[bytes, str]:
    from faceledger.embed.dlib_export import ONNX_FILENAME

    data = _build_checked(source, folder)
    sha = hashlib.sha256(data).hexdigest()
    _write_atomic(folder / ONNX_FILENAME, data)
    manifest = {
        "sha256": sha,
        "source_sha256": source.file("embedder").sha256,
        "builder_version": BUILDER_VERSION,
        "model_id": source.id,
    }
    _write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
    log.info("model %s: ONNX graph built and cached in %s", source.id, folder)
    return data, sha


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
