"""Decode untrusted image bytes into RGB pixels, refusing bombs before the pixels are read."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceledger.errors import BadImage, TooLarge
from faceledger.types import DecodedImage

# Pillow's own bomb check warns/raises based on a process-wide constant; we apply our own
# limit from the header instead, so turn Pillow's off to keep one source of truth.
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "PPM", "BMP", "WEBP", "TIFF", "GIF", "MPO"})


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 40 * 1024 * 1024
    max_pixels: int = 80_000_000
    min_side: int = 16
    """Images smaller than this cannot hold a usable face."""


def load_image(path: str | Path, limits: ImageLimits | None = None) -> DecodedImage:
    """Read and decode an image file (size checked before reading it whole)."""
    limits = limits or ImageLimits()
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError as exc:
        raise BadImage(f"no such file: {p}") from exc
    except OSError as exc:
        raise BadImage(f"cannot read {p}: {exc.strerror}") from exc
    if not p.is_file():
        raise BadImage(f"not a regular file: {p}")
    if size > limits.max_bytes:
        raise TooLarge(f"{p} is {size} bytes; the limit is {limits.max_bytes}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise BadImage(f"cannot read {p}: {exc.strerror}") from exc
    return decode_image(data, limits, source=str(p))


def decode_image(
    data: bytes, limits: ImageLimits | None = None, source: str = "<bytes>"
) -> DecodedImage:
    """Decode image bytes to an upright RGB uint8 array.

    Supports JPEG, PNG (8/16-bit, palette, alpha), greyscale, PGM/PPM, BMP, WebP, TIFF and the
    first frame of GIF. Raises :class:`BadImage` or :class:`TooLarge`.
    """
    limits = limits or ImageLimits()
    if len(data) == 0:
        raise BadImage(f"{source}: empty file")
    if len(data) > limits.max_bytes:
        raise TooLarge(f"{source}: {len(data)} bytes; the limit is {limits.max_bytes}")
    digest = hashlib.sha256(data).hexdigest()
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise BadImage(f"{source}: not a recognised image") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImage(f"{source}: cannot read image header ({exc})") from exc
    fmt = img.format or "unknown"
    if fmt not in SUPPORTED_FORMATS:
        raise BadImage(f"{source}: unsupported image format {fmt}")
    width, height = img.size
    # The header gives the size before any pixel is decoded: refuse bombs here.
    if width * height > limits.max_pixels:
        raise TooLarge(
            f"{source}: {width}×{height} = {width * height} pixels; "
            f"the limit is {limits.max_pixels}"
        )
    if min(width, height) < limits.min_side:
        raise BadImage(f"{source}: {width}×{height} is too small to hold a face")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.seek(0)  # first frame of animations
            img.load()
            upright: Image.Image = ImageOps.exif_transpose(img) or img
            rgb = _to_rgb(upright)
    except TooLarge:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise BadImage(f"{source}: cannot decode image ({exc})") from exc
    pixels = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise BadImage(f"{source}: decoded to unexpected shape {pixels.shape}")
    return DecodedImage(pixels=pixels, sha256=digest, format=fmt, source=source)


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit greyscale: scale the used range down to 8 bits.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        grey = ((arr - lo) * scale).clip(0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        # Adobe-style CMYK JPEGs are stored inverted; Pillow handles the conversion.
        return img.convert("RGB")
    if mode == "RGB":
        return img
    return img.convert("RGB")
