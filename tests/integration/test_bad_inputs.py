"""Each bad input gives a typed error or a correct result: no crash, hang or huge allocation."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceledger import Engine
from faceledger.detect import make_detector
from faceledger.errors import AmbiguousFace, BadImage, NoFace, TooLarge
from faceledger.io import ImageLimits, decode_image, load_image

LONDON = "london/images/001_neutral.jpg"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(side: int = 30000) -> bytes:
    """A real, valid greyscale PNG of side×side black pixels (~900 MB decoded, ~1 MB on disk)."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def face_image(data_dir: Path) -> Image.Image:
    return Image.open(data_dir / LONDON).convert("RGB")


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_given_empty_file_when_loaded_then_bad_image(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(BadImage, match="empty"):
        load_image(p)


def test_given_text_renamed_jpg_then_bad_image(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n" * 20)
    with pytest.raises(BadImage, match="not a recognised image"):
        load_image(p)


def test_given_missing_path_then_bad_image(tmp_path: Path) -> None:
    with pytest.raises(BadImage, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_given_truncated_jpeg_then_bad_image(data_dir: Path) -> None:
    data = (data_dir / LONDON).read_bytes()
    with pytest.raises(BadImage, match="cannot decode"):
        decode_image(data[: len(data) // 2])


def test_given_1x1_image_then_bad_image(face_image: Image.Image) -> None:
    with pytest.raises(BadImage, match="too small"):
        decode_image(_encode(face_image.resize((1, 1)), "PNG"))


def test_given_png_bomb_then_refused_from_header_before_decoding() -> None:
    bomb = png_bomb()
    assert len(bomb) < 2_000_000
    with pytest.raises(TooLarge, match="30000×30000"):
        decode_image(bomb)


def test_given_file_over_byte_limit_then_too_large(tmp_path: Path, data_dir: Path) -> None:
    p = tmp_path / "big.jpg"
    p.write_bytes((data_dir / LONDON).read_bytes())
    with pytest.raises(TooLarge):
        load_image(p, ImageLimits(max_bytes=1000))


@pytest.mark.parametrize(
    ("label", "convert"),
    [
        ("cmyk-jpeg", lambda im: _encode(im.convert("CMYK"), "JPEG", quality=92)),
        (
            "16-bit-png",
            lambda im: _encode(
                Image.fromarray(np.asarray(im.convert("L"), dtype=np.uint16) * 257),
                "PNG",
            ),
        ),
        ("palette-png", lambda im: _encode(im.quantize(colors=256), "PNG")),
        ("rgba-png", lambda im: _encode(im.convert("RGBA"), "PNG")),
        ("greyscale-jpeg", lambda im: _encode(im.convert("L"), "JPEG")),
        ("pgm", lambda im: _encode(im.convert("L"), "PPM")),
        ("bmp", lambda im: _encode(im, "BMP")),
        ("webp", lambda im: _encode(im, "WEBP", quality=90)),
        ("tiff", lambda im: _encode(im, "TIFF")),
        (
            "animated-gif",
            lambda im: _encode(
                im, "GIF", save_all=True, append_images=[Image.new("RGB", im.size, "white")]
            ),
        ),
    ],
)
def test_given_other_formats_then_the_one_face_is_found(
    engine: Engine, face_image: Image.Image, label: str, convert: object
) -> None:
    data = convert(face_image)  # type: ignore[operator]
    if label == "16-bit-png":
        assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    img = decode_image(data)
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (600, 600, 3), label
    faces = engine.detect(img)
    assert len(faces) == 1, label
    box = faces[0].detection.box
    assert 150 < box.left < 250 and 150 < box.top < 280, (label, box)


def test_given_32bit_png_with_alpha_then_faces_found(engine: Engine, data_dir: Path) -> None:
    img = load_image(data_dir / "fr_examples/test_images/32bit.png")
    assert img.format == "PNG"
    assert len(engine.detect(img)) >= 1


def test_given_exif_rotated_photo_then_decoded_upright(
    engine: Engine, face_image: Image.Image
) -> None:
    # Store the pixels rotated by 90° and tag EXIF orientation 6 ("rotate 90° CW to view").
    sideways = face_image.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(sideways, "JPEG", exif=exif.tobytes())
    found = engine.detect(decode_image(data))
    # decoded upright, the frontal (HOG) detector finds it; on the stored pixels it finds none
    assert [f.detection.detector for f in found] == ["hog"]
    raw = np.ascontiguousarray(np.asarray(sideways))
    assert make_detector(engine.settings, "hog").detect(raw) == []


def test_given_no_face_then_no_face_error(engine: Engine, data_dir: Path) -> None:
    path = data_dir / "scenes/dogs.jpg"
    assert engine.detect(path) == []
    with pytest.raises(NoFace):
        engine.embed(path)


def test_given_many_faces_then_all_found_and_single_face_ops_are_explicit(
    engine: Engine, data_dir: Path
) -> None:
    path = data_dir / "scenes/bald_guys.jpg"
    faces = engine.detect(path)
    assert len(faces) >= 10
    with pytest.raises(AmbiguousFace):
        engine.embed(path, selection="only")
    largest = engine.embed(path, selection="largest")
    assert largest.detection.box.area == max(f.detection.box.area for f in faces)
    central = engine.embed(path, selection="central")
    assert central.template is not None
