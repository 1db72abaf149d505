"""Deterministic synthetic identity documents for tests and benchmarks of the MRZ reader.

:func:`render_document` prints a TD3 passport page or a TD1 card (:mod:`.synth_card`),
:func:`degrade` photographs it on a desk with one more degradation (:mod:`.synth_degrade`),
and :func:`sample_set` draws a reproducible mixed set of both with plausible made-up
holders, about 15 % of them with a check digit printed wrong, each with up to two
degradations, and the truth of each as a JSON-able dict to score a reader against.
Same arguments, same pixels: every random choice comes from a seeded generator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from faceledger.document.geometry import Quad
from faceledger.document.mrz import MrzFields, MrzFormat
from faceledger.document.synth_card import (
    CHECK_POSITIONS,
    DocumentSpec,
    RenderedDocument,
    Step,
    pixels_sha256,
    render_document,
)
from faceledger.document.synth_degrade import DEGRADATIONS, GEOMETRIC, degrade, place_on_desk
from faceledger.errors import InvalidArgument
from faceledger.io.decode import load_image

__all__ = [
    "CHECK_POSITIONS",
    "DEGRADATIONS",
    "GEOMETRIC",
    "DocumentSpec",
    "RenderedDocument",
    "SampleDocument",
    "Step",
    "degrade",
    "pixels_sha256",
    "place_on_desk",
    "random_fields",
    "render_document",
    "sample_set",
]

SURNAMES = (
    "ERIKSSON", "MUSTERMANN", "DUPONT", "JANSEN", "ROSSI", "GARCIA", "SMITH", "OKAFOR",
    "NAKAMURA", "KOWALSKI", "MURPHY", "DE<VRIES", "SILVA", "NOVAK", "LINDQVIST", "HASSAN",
    "BERGER", "MARTIN", "VAN<DER<BERG", "OBRIEN", "PETROVA", "FISCHER", "TANAKA", "MOREAU",
)  # fmt: skip
GIVEN_NAMES = (
    "ANNA", "MARIA", "ERIKA", "JEAN", "PIETER", "GIULIA", "JOHN", "CHIDI", "YUKI", "PIOTR",
    "SEAN", "ANA", "LUKAS", "ASTRID", "OMAR", "SOPHIE", "HENRIK", "CLAIRE", "MARTA", "ELENA",
    "PAUL", "IVAN", "LEA", "NOAH",
)  # fmt: skip
STATES = ("UTO", "D", "GBR", "FRA", "NLD", "ITA", "ESP", "SWE", "POL", "IRL", "CAN", "JPN")
NUMBER_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
"""Document-number characters (the letters I/O/Q left out, as many issuers do)."""


@dataclass(frozen=True, eq=False)
class SampleDocument:
    """One document of a :func:`sample_set`, with where its portrait came from."""

    name: str
    document: RenderedDocument
    portrait_path: Path

    def truth(self) -> dict[str, object]:
        """Everything a benchmark scores a read against, as plain JSON types."""
        doc = self.document
        return {
            "name": self.name,
            "format": str(doc.format),
            "lines": list(doc.lines),
            "fields": asdict(doc.fields),
            "valid_check_digits": doc.valid_check_digits,
            "broken_check": doc.broken_check,
            "degradations": [asdict(s) for s in doc.degradations],
            "mrz_quad": _points(doc.mrz_quad),
            "mrz_box": _box(doc.mrz_box),
            "portrait_quad": _points(doc.portrait_quad),
            "portrait_box": _box(doc.portrait_box),
            "document_quad": _points(doc.document_quad),
            "portrait": self.portrait_path.name,
            "size": [int(doc.pixels.shape[1]), int(doc.pixels.shape[0])],
        }


def _points(quad: Quad) -> list[list[float]]:
    return [[round(p.x, 2), round(p.y, 2)] for p in quad]


def _box(box: object) -> list[float]:
    return [round(float(getattr(box, k)), 2) for k in ("left", "top", "right", "bottom")]


def random_fields(rng: np.random.Generator, fmt: MrzFormat) -> MrzFields:
    """A plausible made-up holder: names from a fixed list, dates, a 9-character number."""
    state = str(rng.choice(STATES))
    nationality = state if rng.random() < 0.85 else str(rng.choice(STATES))
    given = " ".join(rng.choice(GIVEN_NAMES, size=int(rng.integers(1, 3)), replace=False))
    number = "".join(rng.choice(list(NUMBER_ALPHABET), size=9))
    birth = f"{rng.integers(40, 100):02d}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
    expiry = f"{rng.integers(20, 36):02d}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
    personal = ""
    if fmt is MrzFormat.TD3 and rng.random() < 0.5:
        personal = "".join(str(d) for d in rng.integers(0, 10, size=int(rng.integers(6, 12))))
    return MrzFields(
        document_type="P" if fmt is MrzFormat.TD3 else "I",
        issuing_state=state,
        document_number=number,
        nationality=nationality,
        birth_date=birth,
        sex=str(rng.choice(["F", "M", "M", "F", "<"])),
        expiry_date=expiry,
        surname=str(rng.choice(SURNAMES)).replace("<", " "),
        given_names=given,
        personal_number=personal,
    )


def sample_set(
    london_dir: Path, n: int, seed: int, *, px_per_mm: float = 10.0
) -> list[SampleDocument]:
    """``n`` documents photographed on a desk: TD1 and TD3 mixed, ~15 % with a wrong check
    digit, each with 0, 1 or 2 degradations (severity 0.2–0.7). The portraits are the London
    set's neutral photos (``london_dir`` is the set's folder or its ``images`` folder)."""
    folder = london_dir / "images" if (london_dir / "images").is_dir() else london_dir
    portraits = sorted(folder.glob("*_neutral.jpg"))
    if not portraits:
        raise InvalidArgument(f"no *_neutral.jpg portraits in {folder}")
    rng = np.random.default_rng([seed, 1])
    return [_sample(i, rng, portraits, px_per_mm) for i in range(n)]


def _sample(
    index: int, rng: np.random.Generator, portraits: list[Path], px_per_mm: float
) -> SampleDocument:
    fmt = MrzFormat.TD3 if rng.random() < 0.5 else MrzFormat.TD1
    fields = random_fields(rng, fmt)
    broken = None
    if rng.random() < 0.15:
        choices = sorted(CHECK_POSITIONS[fmt])
        if not fields.personal_number and "personal_number" in choices:
            choices.remove("personal_number")
        broken = str(rng.choice(choices))
    path = portraits[int(rng.integers(len(portraits)))]
    spec = DocumentSpec(fmt, fields, broken, px_per_mm, seed=int(rng.integers(2**31)))
    doc = place_on_desk(render_document(spec, load_image(path).pixels), int(rng.integers(2**31)))
    count = int(rng.choice([0, 1, 1, 2]))
    kinds = list(rng.choice(DEGRADATIONS, size=count, replace=False))
    kinds.sort(key=lambda k: k not in GEOMETRIC)
    for kind in kinds:
        doc = degrade(doc, str(kind), float(rng.uniform(0.2, 0.7)), int(rng.integers(2**31)))
    return SampleDocument(f"doc{index:03d}", doc, path)
