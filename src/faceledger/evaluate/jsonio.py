"""Small helpers keeping evaluation JSON strict: no NaN/inf (they become null), plain floats."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from faceledger.evaluate.intervals import Interval


def number(x: float | None) -> float | None:
    """``x`` as a plain float, or None when missing or not finite."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def interval(ci: Interval | None) -> list[float] | None:
    return None if ci is None else [float(ci[0]), float(ci[1])]


def dumps(data: Any) -> str:
    """Strict JSON (``allow_nan=False``: a stray NaN is a bug and fails loudly)."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(data), encoding="utf-8")
