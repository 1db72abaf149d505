"""Rendering of synthetic identity documents (ICAO 9303 TD3 passports, TD1 cards) with truth.

Tests and benchmarks of the MRZ reader need documents whose every character is known, that
look enough like the real thing to exercise the locator (a patterned background, a coloured
header, a portrait, printed fields beside the zone) and that can be broken in known ways (a
wrong check digit, see :class:`DocumentSpec`; photographic degradations, see
:mod:`faceledger.document.synth_degrade`). Everything is a function of its arguments: the
same spec, portrait and seed give the same pixels, byte for byte.

The MRZ is set in OCR-B (the font shipped in ``document/fonts``) at the ICAO pitch of 2.54 mm
per character (10 characters per inch) and 4.23 mm per line, with capitals about 2.45 mm tall.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from faceledger.document.geometry import Matrix, Quad, map_quad, quad_box, rect_quad
from faceledger.document.glyphs import OCRB_FONT
from faceledger.document.mrz import MrzFields, MrzFormat, check_digit, compose
from faceledger.errors import InvalidArgument
from faceledger.types import Box, Pixels

PITCH_MM = 2.54
LINE_PITCH_MM = 4.23
CAP_HEIGHT_MM = 2.45

CHECK_POSITIONS: dict[MrzFormat, dict[str, tuple[int, int]]] = {
    MrzFormat.TD3: {
        "document_number": (1, 9),
        "birth_date": (1, 19),
        "expiry_date": (1, 27),
        "personal_number": (1, 42),
        "composite": (1, 43),
    },
    MrzFormat.TD1: {
        "document_number": (0, 14),
        "birth_date": (1, 6),
        "expiry_date": (1, 14),
        "composite": (1, 29),
    },
}
"""(line, column) of each check digit, for :attr:`DocumentSpec.break_check`."""


@dataclass(frozen=True)
class _Layout:
    """Where things go on one document kind, in millimetres."""

    size: tuple[float, float]
    header: float
    portrait: tuple[float, float, float, float]
    fields_left: float
    mrz_left: float
    mrz_first_line: float
    """Baseline of the MRZ's first line, from the top edge."""
    title: str


LAYOUTS: dict[MrzFormat, _Layout] = {
    MrzFormat.TD3: _Layout(
        (125.0, 88.0), 10.0, (6.0, 15.0, 41.0, 60.0), 47.0, 6.0, 75.6, "PASSPORT"
    ),
    MrzFormat.TD1: _Layout(
        (85.6, 54.0), 7.0, (3.5, 9.0, 25.5, 37.0), 29.0, 5.0, 43.1, "IDENTITY CARD"
    ),
}


@dataclass(frozen=True)
class DocumentSpec:
    """What to print. ``break_check`` names a check digit to print wrong on purpose (one of
    :data:`CHECK_POSITIONS` for the format); the composite digit is then recomputed over the
    printed characters so that exactly the named check fails."""

    format: MrzFormat
    fields: MrzFields
    break_check: str | None = None
    px_per_mm: float = 12.0
    seed: int = 0
    """Varies the colours and the background pattern, nothing printed."""


@dataclass(frozen=True)
class Step:
    """One degradation as applied: its kind, severity (0-1) and seed; photometric steps are
    kept to be replayed when a later geometric step recomposes the photo."""

    kind: str
    severity: float
    seed: int


@dataclass(frozen=True, eq=False)
class RenderedDocument:
    """A rendered document (alone, or photographed on a desk once degraded) with its truth.

    The quads are in ``pixels`` coordinates and stay exact through every degradation: they
    are the card's own rectangles mapped by the same homography that placed the card.
    """

    pixels: Pixels
    lines: tuple[str, ...]
    fields: MrzFields
    format: MrzFormat
    valid_check_digits: bool
    broken_check: str | None
    mrz_quad: Quad
    """Around the printed MRZ characters, in reading order (top-left of the text first)."""
    portrait_quad: Quad
    document_quad: Quad
    px_per_mm: float
    card: Pixels = field(repr=False)
    """The flat, undegraded card: geometric degradations re-place it."""
    card_to_image: Matrix = field(repr=False)
    canvas: tuple[int, int] = (0, 0)
    """(width, height) of the photo before any rescaling step."""
    desk_seed: int | None = None
    """None while the card is alone (a flat scan), else the desk texture's seed."""
    steps: tuple[Step, ...] = ()
    degradations: tuple[Step, ...] = ()
    """Every degradation applied, in order (geometric ones included)."""

    @property
    def mrz_box(self) -> Box:
        return quad_box(self.mrz_quad, self.pixels.shape[1], self.pixels.shape[0])

    @property
    def portrait_box(self) -> Box:
        return quad_box(self.portrait_quad, self.pixels.shape[1], self.pixels.shape[0])

    @property
    def document_box(self) -> Box:
        return quad_box(self.document_quad, self.pixels.shape[1], self.pixels.shape[0])

    def card_quads(self) -> tuple[Quad, Quad, Quad]:
        """MRZ, portrait and document rectangles in the flat card's coordinates."""
        return _card_quads(self.format, self.px_per_mm)

    def with_geometry(self, pixels: Pixels, h: Matrix, scale: float) -> RenderedDocument:
        """The same document with new pixels whose card sits at ``scale · h``."""
        mrz, portrait, doc = self.card_quads()
        total = np.diag([scale, scale, 1.0]) @ h
        return replace(
            self,
            pixels=pixels,
            mrz_quad=map_quad(total, mrz),
            portrait_quad=map_quad(total, portrait),
            document_quad=map_quad(total, doc),
        )


def render_document(spec: DocumentSpec, portrait: Pixels) -> RenderedDocument:
    """Render ``spec`` as a flat document image, the portrait cropped into its ICAO box.

    TD3 is a passport data page (ID-3, 125×88 mm): portrait 35×45 mm on the left, printed
    fields on the right, the 2×44 MRZ along the bottom. TD1 is an ID-1 card (85.6×54 mm):
    real cards carry the 3×30 MRZ on the back, but for one test image this renders portrait,
    a few fields and the MRZ on one side.
    """
    if spec.format not in LAYOUTS:
        raise InvalidArgument(f"only TD1 and TD3 documents are rendered, not {spec.format}")
    lines = _break(spec.format, compose(spec.format, spec.fields), spec.break_check)
    layout = LAYOUTS[spec.format]
    mm = spec.px_per_mm
    size = (round(layout.size[0] * mm), round(layout.size[1] * mm))
    rng = np.random.default_rng(spec.seed)
    img = Image.fromarray(_guilloche(size, rng, mm))
    draw = ImageDraw.Draw(img)
    header_colour = tuple(int(c) for c in rng.integers(20, 140, size=3))
    draw.rectangle((0, 0, size[0], round(layout.header * mm)), fill=header_colour)
    _text(
        draw, (layout.fields_left * mm, layout.header * mm * 0.7), layout.title, 3.2 * mm, "#f4f4f4"
    )
    px, py, px2, py2 = (round(v * mm) for v in layout.portrait)
    img.paste(Image.fromarray(_fit_portrait(portrait, (px2 - px, py2 - py))), (px, py))
    _print_fields(draw, spec, layout)
    _print_mrz(draw, lines, layout, mm)
    card = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    mrz, portrait_q, doc = _card_quads(spec.format, mm)
    return RenderedDocument(
        pixels=card,
        lines=lines,
        fields=spec.fields,
        format=spec.format,
        valid_check_digits=spec.break_check is None,
        broken_check=spec.break_check,
        mrz_quad=mrz,
        portrait_quad=portrait_q,
        document_quad=doc,
        px_per_mm=mm,
        card=card,
        card_to_image=np.eye(3),
        canvas=size,
    )


def _card_quads(fmt: MrzFormat, mm: float) -> tuple[Quad, Quad, Quad]:
    layout = LAYOUTS[fmt]
    n_lines, n_chars = (3, 30) if fmt is MrzFormat.TD1 else (2, 44)
    cap = CAP_HEIGHT_MM
    left = layout.mrz_left - 0.2
    right = layout.mrz_left + (n_chars - 1) * PITCH_MM + 2.2
    top = layout.mrz_first_line - cap - 0.2
    bottom = layout.mrz_first_line + (n_lines - 1) * LINE_PITCH_MM + 0.3
    mrz = rect_quad(left * mm, top * mm, right * mm, bottom * mm)
    portrait = rect_quad(*(v * mm for v in layout.portrait))
    doc = rect_quad(0.0, 0.0, round(layout.size[0] * mm), round(layout.size[1] * mm))
    return mrz, portrait, doc


def _break(fmt: MrzFormat, lines: tuple[str, ...], which: str | None) -> tuple[str, ...]:
    """Print the named check digit wrong and re-derive the composite over what is printed."""
    if which is None:
        return lines
    positions = CHECK_POSITIONS[fmt]
    if which not in positions:
        raise InvalidArgument(f"break_check must be one of {sorted(positions)}, not {which!r}")
    out = list(lines)
    row, col = positions[which]
    old = out[row][col]
    wrong = str((int(old) + 5) % 10) if old.isdigit() else "5"
    out[row] = out[row][:col] + wrong + out[row][col + 1 :]
    if which != "composite":
        crow, ccol = positions["composite"]
        digit = check_digit(_composite_input(fmt, out))
        out[crow] = out[crow][:ccol] + digit + out[crow][ccol + 1 :]
    return tuple(out)


def _composite_input(fmt: MrzFormat, lines: list[str]) -> str:
    if fmt is MrzFormat.TD3:
        two = lines[1]
        return two[0:10] + two[13:20] + two[21:43]
    return lines[0][5:30] + lines[1][0:7] + lines[1][8:15] + lines[1][18:29]


def _guilloche(size: tuple[int, int], rng: np.random.Generator, mm: float) -> Pixels:
    """A light tinted ground with faint interleaved sine lines, like a security print."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / np.float32(mm)
    ground = np.array([236, 236, 228], np.float32) + rng.uniform(-8, 8, 3).astype(np.float32)
    tint = rng.uniform(60, 200, 3).astype(np.float32)
    ink = np.zeros((h, w), np.float32)
    for _ in range(3):
        period, amp, freq = rng.uniform(2.5, 5.0), rng.uniform(1.0, 4.0), rng.uniform(0.05, 0.15)
        phase = rng.uniform(0, 2 * math.pi)
        wave = np.sin(2 * math.pi * (y + amp * np.sin(freq * x + phase)) / period)
        ink = np.maximum(ink, np.clip((np.abs(wave) - 0.9) * 10.0, 0.0, 1.0))
    strength = np.float32(rng.uniform(0.10, 0.18))
    img = ground[None, None, :] * (1 - strength * ink[..., None]) + tint * strength * ink[..., None]
    out: Pixels = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _fit_portrait(portrait: Pixels, size: tuple[int, int]) -> Pixels:
    """Centre-crop the photo to the box's aspect and resize it (high-quality filter)."""
    h, w = portrait.shape[:2]
    target = size[0] / size[1]
    if w / h > target:
        cw, ch = round(h * target), h
    else:
        cw, ch = w, round(w / target)
    left, top = (w - cw) // 2, max(0, (h - ch) // 3)
    img = Image.fromarray(portrait).crop((left, top, left + cw, top + ch))
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


@lru_cache(maxsize=32)
def _font(px: int, ocrb: bool) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if ocrb:
        return ImageFont.truetype(str(OCRB_FONT), px)
    return ImageFont.load_default(px)


@lru_cache(maxsize=1)
def _ocrb_cap_ratio() -> float:
    _, top, _, bottom = _font(200, True).getbbox("H")
    return (bottom - top) / 200.0


def _text(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, px: float, fill: str
) -> None:
    draw.text(xy, text, font=_font(max(6, round(px)), False), fill=fill, anchor="ls")


def _print_fields(draw: ImageDraw.ImageDraw, spec: DocumentSpec, layout: _Layout) -> None:
    """The human-readable zone: small grey labels over black values (fewer, smaller rows on
    the card than on the passport page)."""
    f, mm = spec.fields, spec.px_per_mm
    born, sex, expires = (
        _human_date(f.birth_date),
        f.sex.replace("<", "X"),
        _human_date(f.expiry_date),
    )
    names = [
        ("Surname", f.surname.replace("<", " ")),
        ("Given names", f.given_names.replace("<", " ")),
    ]
    if spec.format is MrzFormat.TD1:
        rows = [
            *names,
            ("Nationality / Sex / Date of birth", f"{f.nationality}   {sex}   {born}"),
            ("Document No. / Date of expiry", f"{f.document_number}   {expires}"),
        ]
        label, value = 1.4, 2.3
    else:
        rows = [
            ("Type / Code / No.", f"{f.document_type}   {f.issuing_state}   {f.document_number}"),
            *names,
            ("Nationality", f.nationality),
            ("Date of birth / Sex", f"{born}   {sex}"),
            ("Date of expiry", expires),
        ]
        label, value = 1.6, 2.6
    top = layout.header + 4.5
    step = (layout.mrz_first_line - CAP_HEIGHT_MM - 4.0 - top) / len(rows)
    x = layout.fields_left * mm
    for i, (name, text) in enumerate(rows):
        y = (top + i * step) * mm
        _text(draw, (x, y), name, label * mm, "#6a6a6a")
        _text(draw, (x, y + (value + 0.4) * mm), text, value * mm, "#141414")


MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _human_date(yymmdd: str) -> str:
    if len(yymmdd) != 6 or not yymmdd.isdigit() or not 1 <= int(yymmdd[2:4]) <= 12:
        return yymmdd
    return f"{yymmdd[4:6]} {MONTHS[int(yymmdd[2:4]) - 1]} {yymmdd[0:2]}"


def _print_mrz(
    draw: ImageDraw.ImageDraw, lines: tuple[str, ...], layout: _Layout, mm: float
) -> None:
    """One glyph per cell at the fixed pitch, so that the zone is true to ICAO's grid."""
    font = _font(round(CAP_HEIGHT_MM * mm / _ocrb_cap_ratio()), True)
    for row, line in enumerate(lines):
        baseline = (layout.mrz_first_line + row * LINE_PITCH_MM) * mm
        for col, char in enumerate(line):
            x = (layout.mrz_left + col * PITCH_MM) * mm
            draw.text((x, baseline), char, font=font, fill=(18, 18, 24), anchor="ls")


def pixels_sha256(pixels: npt.NDArray[np.uint8]) -> str:
    """A digest of the pixels and their shape: the determinism check's fingerprint."""
    digest = hashlib.sha256(str(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()
