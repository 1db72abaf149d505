"""Write videos with LGPL/BSD encoders only, and make the lead-annotated copy of a video.

The copy shows nothing recognisable except the leads: every frame is pixelated and blurred
whole (so that faces the detector missed are hidden too), then each lead's box is pasted back
sharp and labelled.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import av.error
import numpy as np
from av.container import OutputContainer
from av.video.stream import VideoStream
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from faceledger.errors import InvalidArgument
from faceledger.types import Box, Pixels
from faceledger.video.source import VideoLimits, open_video

__all__ = ["CODECS", "DrawTrack", "VideoWriter", "draw_leads", "obscure"]

CODECS: dict[str, str] = {
    # FFmpeg's native MPEG-4 Part 2 encoder (LGPL). Not libx264/libx265: the av wheels bundle
    # those under the GPL, which would bind whoever ships this engine.
    ".mp4": "mpeg4",
    ".mov": "mpeg4",
    ".mkv": "mpeg4",
    ".avi": "mpeg4",
    # VP8 through libvpx (BSD licence)
    ".webm": "libvpx",
}
"""The encoder used for each file suffix."""

_BITS_PER_PIXEL = 0.3
"""Target bit rate per pixel and frame: about 2.8 Mbit/s for 640×480 at 30 frames/s."""
_MIN_BIT_RATE = 1_000_000
_MAX_BIT_RATE = 40_000_000
_MAX_FPS = 1000.0
_MPEG4_MAX_TIMEBASE = 65535
_VP8_OPTIONS = {"deadline": "good", "cpu-used": "8"}

PIXELATE_FACTOR = 24
"""The obscured background keeps one block per this many pixels in each direction."""
LEAD_EXPAND = 1.15
"""A lead's box is widened and heightened by this factor before it is pasted back sharp."""
_Font = ImageFont.ImageFont | ImageFont.FreeTypeFont
_BOX_COLOUR = (255, 196, 0)
_TEXT_COLOUR = (0, 0, 0)


class VideoWriter:
    """Encode RGB frames to ``path`` at a constant ``fps``; the codec follows the suffix
    (:data:`CODECS`). Odd sizes are padded to even (repeating the last row or column), as
    4:2:0 chroma needs."""

    frames_written: int

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        path = Path(path)
        codec = CODECS.get(path.suffix.lower())
        if codec is None:
            raise InvalidArgument(
                f"{path.name}: cannot write video with suffix {path.suffix!r}; "
                f"use one of {', '.join(sorted(CODECS))}"
            )
        if width <= 0 or height <= 0:
            raise InvalidArgument(f"{path.name}: frame size {width}×{height} is not positive")
        if not (math.isfinite(fps) and 0 < fps <= _MAX_FPS):
            raise InvalidArgument(f"{path.name}: fps must be in (0, {_MAX_FPS:g}], not {fps}")
        self.path = path
        self.width = width
        self.height = height
        self.frames_written = 0
        encoded_w, encoded_h = width + width % 2, height + height % 2
        try:
            self._container: OutputContainer | None = av.open(str(path), mode="w")
            stream = self._container.add_stream(
                codec,
                rate=_stream_rate(fps),
                options=dict(_VP8_OPTIONS) if codec == "libvpx" else {},
            )
        except av.error.FFmpegError as exc:
            raise OSError(f"cannot write {path.name}: {exc.strerror}") from exc
        assert isinstance(stream, VideoStream)
        self._stream = stream
        self._stream.width = encoded_w
        self._stream.height = encoded_h
        self._stream.pix_fmt = "yuv420p"
        self._stream.bit_rate = int(
            min(_MAX_BIT_RATE, max(_MIN_BIT_RATE, encoded_w * encoded_h * fps * _BITS_PER_PIXEL))
        )

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, pixels: Pixels) -> None:
        """Append one frame: RGB uint8 of the writer's height × width."""
        if self._container is None:
            raise InvalidArgument(f"{self.path.name}: the writer is closed")
        if pixels.dtype != np.uint8 or pixels.shape != (self.height, self.width, 3):
            raise InvalidArgument(
                f"{self.path.name}: expected RGB uint8 of shape {(self.height, self.width, 3)}, "
                f"got {pixels.dtype} {pixels.shape}"
            )
        pad_h, pad_w = self.height % 2, self.width % 2
        if pad_h or pad_w:
            pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        try:
            self._container.mux(self._stream.encode(frame))
        except av.error.FFmpegError as exc:
            raise OSError(f"cannot write {self.path.name}: {exc.strerror}") from exc
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent)."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            container.mux(self._stream.encode(None))
        except av.error.FFmpegError as exc:
            raise OSError(f"cannot finish {self.path.name}: {exc.strerror}") from exc
        finally:
            container.close()


def _stream_rate(fps: float) -> Fraction:
    """The frame rate as a fraction whose numerator MPEG-4's 16-bit time base can hold."""
    rate = Fraction(fps).limit_denominator(1001)
    if rate.numerator > _MPEG4_MAX_TIMEBASE:
        rate = Fraction(max(1, round(fps)))
    return rate


@dataclass(frozen=True)
class DrawTrack:
    """One lead to show: its label and boxes (source pixels) at times, sorted by time."""

    label: str
    keyframes: tuple[tuple[float, Box], ...]

    def __post_init__(self) -> None:
        if not self.keyframes:
            raise InvalidArgument(f"track {self.label!r} has no keyframes")
        times = [t for t, _ in self.keyframes]
        if any(b < a for a, b in itertools.pairwise(times)):
            raise InvalidArgument(f"track {self.label!r}: keyframes are not sorted by time")

    @property
    def start_s(self) -> float:
        return self.keyframes[0][0]

    @property
    def end_s(self) -> float:
        return self.keyframes[-1][0]

    def box_at(self, time_s: float) -> Box:
        """The box linearly interpolated between keyframes, held before the first and after
        the last."""
        if time_s <= self.start_s:
            return self.keyframes[0][1]
        if time_s >= self.end_s:
            return self.keyframes[-1][1]
        times = [t for t, _ in self.keyframes]
        i = bisect.bisect_right(times, time_s)
        (t0, a), (t1, b) = self.keyframes[i - 1], self.keyframes[i]
        f = (time_s - t0) / (t1 - t0) if t1 > t0 else 1.0
        return Box(
            a.left + (b.left - a.left) * f,
            a.top + (b.top - a.top) * f,
            a.right + (b.right - a.right) * f,
            a.bottom + (b.bottom - a.bottom) * f,
        )


def draw_leads(
    source: Path,
    dest: Path,
    tracks: Sequence[DrawTrack],
    *,
    limits: VideoLimits | None = None,
    margin_s: float = 0.25,
    progress: Callable[[float], None] | None = None,
) -> int:
    """Write ``dest``: every frame of ``source`` obscured whole, with each track active at that
    time (its first keyframe - ``margin_s`` to its last + ``margin_s``) pasted back sharp,
    boxed and labelled. Returns the frames written; ``dest`` is removed if this fails.

    ``progress`` gets the fraction done (0..1) when the duration is known; it may raise
    (e.g. :class:`~faceledger.errors.Cancelled`) to stop.
    """
    dest = Path(dest)
    if dest.resolve() == Path(source).resolve():
        raise InvalidArgument(f"{dest.name}: the annotated copy cannot overwrite its source")
    written = 0
    try:
        with open_video(source, limits) as reader:
            info = reader.info
            font = _font(info.height)
            with VideoWriter(dest, info.width, info.height, info.fps) as writer:
                for frame in reader:
                    pixels = _fit(frame.pixels, info.width, info.height)
                    active = [
                        t
                        for t in tracks
                        if t.start_s - margin_s <= frame.time_s <= t.end_s + margin_s
                    ]
                    writer.write(_annotate(pixels, frame.time_s, active, font))
                    written += 1
                    if progress is not None and info.duration_s:
                        progress(min(1.0, frame.time_s / info.duration_s))
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    if progress is not None:
        progress(1.0)
    return written


def obscure(pixels: Pixels) -> Pixels:
    """Pixelate (one block per :data:`PIXELATE_FACTOR` pixels) and blur a whole frame, so that
    no face in it stays recognisable."""
    return np.asarray(_obscure(Image.fromarray(pixels)), dtype=np.uint8)


def _obscure(image: Image.Image) -> Image.Image:
    w, h = image.size
    small = image.resize(
        (max(1, w // PIXELATE_FACTOR), max(1, h // PIXELATE_FACTOR)), Image.Resampling.BOX
    )
    blocks = small.resize((w, h), Image.Resampling.NEAREST)
    return blocks.filter(ImageFilter.GaussianBlur(radius=max(2.0, PIXELATE_FACTOR / 4)))


def _annotate(pixels: Pixels, time_s: float, tracks: Sequence[DrawTrack], font: _Font) -> Pixels:
    original = Image.fromarray(pixels)
    out = _obscure(original)
    height, width = pixels.shape[:2]
    boxes = [(t.label, _expanded(t.box_at(time_s), width, height)) for t in tracks]
    shown = [(label, box) for label, box in boxes if box is not None]
    # all sharp regions first, then every outline and label, so that none hides another's
    for _, box in shown:
        out.paste(original.crop(box), box[:2])
    draw = ImageDraw.Draw(out)
    line = max(2, height // 240)
    for label, (left, top, right, bottom) in shown:
        draw.rectangle((left, top, right - 1, bottom - 1), outline=_BOX_COLOUR, width=line)
        _label(draw, label, left, top, font)
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8))


def _expanded(box: Box, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The box grown by :data:`LEAD_EXPAND` about its centre, in whole pixels inside the frame;
    None when nothing of it is inside."""
    c = box.center
    half_w, half_h = box.width * LEAD_EXPAND / 2, box.height * LEAD_EXPAND / 2
    left = max(0, math.floor(c.x - half_w))
    top = max(0, math.floor(c.y - half_h))
    right = min(width, math.ceil(c.x + half_w))
    bottom = min(height, math.ceil(c.y + half_h))
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def _label(draw: ImageDraw.ImageDraw, text: str, left: int, top: int, font: _Font) -> None:
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    text_h = y1 - y0 + 4
    y = top - text_h if top >= text_h else top
    draw.rectangle((left, y, left + (x1 - x0) + 6, y + text_h), fill=_BOX_COLOUR)
    draw.text((left + 3 - x0, y + 2 - y0), text, fill=_TEXT_COLOUR, font=font)


def _font(frame_height: int) -> _Font:
    """Pillow's default font, at a size readable on the frame."""
    return ImageFont.load_default(size=max(12, frame_height // 32))


def _fit(pixels: Pixels, width: int, height: int) -> Pixels:
    """A frame resized to the output size (a stream may change its size mid-way)."""
    if pixels.shape[:2] == (height, width):
        return pixels
    resized = Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)
