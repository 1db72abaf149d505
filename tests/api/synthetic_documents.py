"""Synthetic identity documents for the service's tests: ``faceledger.document.synth``'s
rendering of a TD3 passport page around a London neutral portrait, as PNG bytes with its
truth. The same arguments give the same bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from faceledger.document.mrz import MrzFields, MrzFormat
from faceledger.document.synth import DocumentSpec, RenderedDocument, render_document
from faceledger.io.decode import load_image
from faceledger.types import Pixels
from tests.specimens import SPECIMEN

HOLDER = replace(SPECIMEN, expiry_date="340415", personal_number="")
"""ICAO 9303's specimen holder, with an expiry in 2034."""
EXPIRED_HOLDER = MrzFields(
    document_type="P",
    issuing_state="D",
    document_number="C01X00T47",
    nationality="D",
    birth_date="830812",
    sex="M",
    expiry_date="200101",
    surname="MUSTERMANN",
    given_names="ERIKA",
)
"""A passport that expired on 2020-01-01."""


@dataclass(frozen=True)
class Document:
    png: bytes
    rendered: RenderedDocument


def png_bytes(pixels: Pixels) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def passport(
    images: Path,
    person: str,
    fields: MrzFields = HOLDER,
    *,
    break_check: str | None = None,
    px_per_mm: float = 10.0,
) -> Document:
    """A TD3 data page with ``person``'s neutral photo as its portrait (``images``: the
    London set's images folder), printed flat: 10 px/mm gives 1250×880 px and a portrait of
    about 70 px between the eyes; 5 px/mm, as a phone held at arm's length, about 35."""
    portrait = load_image(images / f"{person}_neutral.jpg").pixels
    spec = DocumentSpec(MrzFormat.TD3, fields, break_check, px_per_mm, seed=7)
    doc = render_document(spec, portrait)
    return Document(png_bytes(doc.pixels), doc)


def side_by_side(a: RenderedDocument, b: RenderedDocument, gap: int = 40) -> bytes:
    """Two documents photographed together, as PNG bytes."""
    height = max(a.pixels.shape[0], b.pixels.shape[0])
    width = a.pixels.shape[1] + gap + b.pixels.shape[1]
    canvas = np.full((height, width, 3), 255, np.uint8)
    canvas[: a.pixels.shape[0], : a.pixels.shape[1]] = a.pixels
    canvas[: b.pixels.shape[0], a.pixels.shape[1] + gap :] = b.pixels
    return png_bytes(canvas)
