"""All settings in one object, passed in explicitly (no module reads the environment itself).

``Settings.from_env(os.environ)`` is called once by the CLI / service entry points; library
users build ``Settings(...)`` directly or take the defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args, get_type_hints

from faceledger.errors import InvalidArgument

DetectorName = Literal["hog", "cnn", "hog+cnn"]
FaceSelection = Literal["primary", "largest", "central", "only"]
RuntimeName = Literal["auto", "onnx", "dlib"]

ENV_PREFIX = "FACELEDGER_"


@dataclass(frozen=True)
class QualityGates:
    """Thresholds below which an *enrolment* image is refused (probes are only flagged)."""

    min_inter_eye_px: float = 20.0
    min_sharpness: float = 15.0
    max_abs_yaw_deg: float = 35.0
    max_abs_roll_deg: float = 30.0
    min_brightness: float = 40.0
    max_brightness: float = 220.0
    max_clipped_fraction: float = 0.25
    min_score: float = 40.0


@dataclass(frozen=True)
class Settings:
    # image input limits
    max_image_bytes: int = 40 * 1024 * 1024
    max_image_pixels: int = 80_000_000
    video_max_bytes: int = 4 * 1024**3
    video_max_pixels: int = 3840 * 2160
    """Largest video frame (width x height) a video search decodes."""
    video_max_seconds: float = 6 * 3600.0
    # detection
    detector: DetectorName = "hog+cnn"
    """``hog`` (fast), ``cnn`` (dlib's MMOD: finds more, seconds per image) or ``hog+cnn``: HOG,
    and the CNN for images where HOG finds no face (benchmarks/README.md, open-set 1:N)."""
    detect_max_side: int = 1600
    """Images whose longer side exceeds this are detected on a downscaled copy."""
    cnn_max_side: int = 640
    """The CNN detector is slow: it runs on a copy no larger than this."""
    min_face_px: int = 40
    """Faces smaller than this (box side, px) need upsampling; auto-upsampling targets it."""
    max_upsample: int = 2
    face_selection: FaceSelection = "primary"
    """Which face a single-face operation uses: ``primary`` (the photo's subject: large and
    central, ``detect.select``), ``largest``, ``central``, or ``only`` (an error if several)."""
    # quality
    gates: QualityGates = field(default_factory=QualityGates)
    # embedding
    model_id: str = "dlib-resnet-v1"
    flip_average: bool | None = None
    """Template recipe: ``None`` takes the model card's; ``True``/``False`` picks the card of
    the same weights with (``<id>-flip``) or without flip averaging (``ModelRegistry.resolve``)."""
    jitter: int = 0
    model_dir: Path | None = None
    """Extra folder of model cards (JSON) besides the built-in ones."""
    runtime: RuntimeName = "auto"
    """What runs dlib's ResNet: ``auto`` (onnxruntime on a graph built from the shipped weights
    and cached, dlib's runtime where that fails), ``onnx`` or ``dlib`` (``embed.runtime``)."""
    cache_dir: Path | None = None
    """Per-user cache (built ONNX graphs); default ``$XDG_CACHE_HOME/faceledger`` or
    ``~/.cache/faceledger``."""
    # decisions
    default_fmr: float = 1e-3
    # 1:N search
    default_fpir: float = 0.01
    """Target false-positive identification rate of a search when none is given."""
    top_k: int = 20
    """Longest candidate list a search returns per face."""
    aggregation: Literal["max", "fused", "quality"] = "max"
    """Per-subject score over its templates: best single template, the mean template, or the
    mean weighted by each template's face quality score."""
    normalisation: Literal["none", "asnorm"] = "asnorm"
    """1:N scores: ``asnorm`` normalises each score against the searched galleries' own
    templates (all of them up to the card's ``cohort_max``, when they hold at least its
    ``cohort_size``), with the FPIR threshold from the gallery's own count or the card's
    open-set calibration; ``none`` ranks by cosine similarity."""
    fpir_calibration: Literal["auto", "card"] = "auto"
    """Where a search's FPIR threshold comes from: ``auto`` counts it on the searched
    galleries' own members (leave-one-subject-out searches, ``gallery.selfcal``) when they are
    enough to count the target rate, else the model card; ``card`` always uses the card."""
    # accountability
    two_person_rule: bool = True
    blind_review: bool = True
    """A reviewer first records a judgement on the two faces alone (no score, rank or FMR
    shown); only then are the scores shown and a verdict taken (automation bias)."""
    verify_requires_purpose: bool = False
    keep_probe_images: bool = False
    """Keep each search's probe image (in the image store, encrypted with the template key if
    set, purged by retention) for its reviewers; the audit log holds only its sha256. The
    service decides for its own searches (``faceledger serve --keep-probes``)."""
    keep_enrolled_images: bool = False
    """Keep each enrolled image beside its template for reviewers (erased with it). The
    service keeps them (``faceledger serve --no-keep-images`` to stop)."""
    audit_image_views: bool = True
    cluster_set_retention_days: int = 30
    """Days a kept cluster set (``faceledger cluster --keep``) is held before retention
    deletes it, faces, crops and templates."""
    near_duplicates: Literal["warn", "refuse", "off"] = "warn"
    """A new face scoring at least the threshold at ``near_duplicate_fmr`` against another
    subject's face in the gallery: enrol it and report the pair (``warn``), do not enrol it
    (``refuse``), or do not look (``off``). See ``gallery.duplicates``."""
    near_duplicate_fmr: float = 1e-5
    """False-match rate whose threshold marks two faces as one person for that check."""
    """Record in the audit log who looked at which kept enrolled or probe image."""
    audit_signing_key: Path | None = None
    """PEM file of an Ed25519 key signing every audit entry."""
    template_key: Path | None = None
    """File holding a 32-byte key (raw or hex): templates are AES-GCM encrypted at rest."""
    operator: str | None = None
    """Who is at the command line (recorded in the audit log); default: the OS user."""
    # storage and work
    database_url: str | None = None
    """SQLite path/URL or postgresql://...; default: <data_dir>/faceledger.db."""
    index_uri: str | None = None
    """A Milvus server (``http://host:19530``) or milvus-lite file (``*.db``) holding every
    gallery's index, shared by every process using the database (replicas of the service);
    default: a faiss/ScaNN file per gallery under <data_dir>/indexes, one per process."""
    workers: int = 0
    """Worker processes for bulk work; 0 means one per core."""
    data_dir: Path = Path(".faceledger")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        """Read ``FACELEDGER_<FIELD>`` variables (and ``FACELEDGER_GATE_<FIELD>`` for gates)."""
        hints = get_type_hints(cls)
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key in environ and f.name != "gates":
                values[f.name] = _convert(f.name, hints[f.name], environ[key])
        gate_hints = get_type_hints(QualityGates)
        gate_values: dict[str, object] = {}
        for f in dataclasses.fields(QualityGates):
            key = ENV_PREFIX + "GATE_" + f.name.upper()
            if key in environ:
                gate_values[f.name] = _convert(f.name, gate_hints[f.name], environ[key])
        if gate_values:
            values["gates"] = QualityGates(**gate_values)  # type: ignore[arg-type]
        if "cache_dir" not in values and environ.get("XDG_CACHE_HOME"):
            values["cache_dir"] = Path(environ["XDG_CACHE_HOME"]) / "faceledger"
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, hint: object, raw: str) -> object:
    try:
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is bool or hint == (bool | None):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if hint == Path or hint == (Path | None):
            return Path(raw)
        if hint == (str | None):
            return raw
        choices = get_args(hint)
        if choices and all(isinstance(c, str) for c in choices):
            if raw not in choices:
                raise ValueError(f"expected one of {choices}")
            return raw
        return raw
    except ValueError as exc:
        raise InvalidArgument(f"bad value for setting {name}: {raw!r} ({exc})") from exc
