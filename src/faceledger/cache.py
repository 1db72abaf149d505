"""A persistent cache of embedding outcomes keyed by image sha256 and pipeline fingerprint.

Evaluation and calibration embed the same files again and again; the fingerprint covers
every setting that changes a template, so a changed pipeline never reuses stale results.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

from faceledger.config import Settings
from faceledger.models import ModelRegistry
from faceledger.serialize import face_from_dict, face_to_dict
from faceledger.types import FaceResult


def pipeline_fingerprint(settings: Settings, embedder_sha256: str) -> str:
    relevant = {
        # the card that makes the templates (its id names the recipe: flip or not)
        "model": ModelRegistry(settings.model_dir)
        .resolve(settings.model_id, settings.flip_average)
        .id,
        "weights": embedder_sha256,
        "detector": settings.detector,
        "detect_max_side": settings.detect_max_side,
        "cnn_max_side": settings.cnn_max_side,
        "min_face_px": settings.min_face_px,
        "max_upsample": settings.max_upsample,
        "selection": settings.face_selection,
        "jitter": settings.jitter,
        "runtime": settings.runtime,
        "gates": asdict(settings.gates),
        "version": 3,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:32]


class TemplateCache:
    """(image sha256, fingerprint) → outcome (face + template, or error code and message)."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outcomes (sha256 TEXT, fingerprint TEXT, faces INTEGER,"
            " error TEXT, message TEXT, face TEXT, PRIMARY KEY (sha256, fingerprint))"
        )
        self._db.commit()

    def get(self, sha256: str) -> tuple[FaceResult | None, int, str | None, str | None] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT faces, error, message, face FROM outcomes"
                " WHERE sha256 = ? AND fingerprint = ?",
                (sha256, self.fingerprint),
            ).fetchone()
        if row is None:
            return None
        faces, error, message, face = row
        return (face_from_dict(json.loads(face)) if face else None, faces, error, message)

    def put(
        self,
        sha256: str,
        face: FaceResult | None,
        faces: int,
        error: str | None,
        message: str | None,
    ) -> None:
        payload = json.dumps(face_to_dict(face)) if face else None
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?)",
                (sha256, self.fingerprint, faces, error, message, payload),
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_cache(settings: Settings, embedder_sha256: str) -> TemplateCache:
    """The cache under ``settings.data_dir`` for this pipeline configuration."""
    return TemplateCache(
        settings.data_dir / "cache" / "templates.sqlite",
        pipeline_fingerprint(settings, embedder_sha256),
    )
