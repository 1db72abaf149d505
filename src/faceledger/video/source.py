"""Open videos within limits and stream their frames, sampled by time.

Stored videos (a file or bytes) are decoded in the caller's thread; live sources (a device, an
RTSP/HTTP stream, a pipe, or a file played at its own pace) are decoded by a background thread
into a queue of at most two frames that drops the oldest when the consumer falls behind.
Every FFmpeg error becomes :class:`BadVideo`, :class:`TooLarge` or :class:`VideoStalled`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import select
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import av
import av.error
import av.stream
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from faceledger.config import Settings
from faceledger.errors import BadVideo, InvalidArgument, TooLarge, VideoStalled
from faceledger.types import Pixels

__all__ = [
    "QUEUE_FRAMES",
    "Frame",
    "VideoInfo",
    "VideoLimits",
    "VideoReader",
    "open_video",
    "probe_video",
]

QUEUE_FRAMES = 2
"""Frames a live source may hold for a slow consumer before it drops the oldest."""

# Demuxers a stored video may use: video containers and raw video streams. The rest of what
# FFmpeg opens is refused as "not a video": images, playlists that would fetch other files or
# URLs (hls, concat), and the ANSI-art demuxer that claims any .txt file.
_FILE_FORMATS = (
    "mov,matroska,avi,ogg,flv,mpegts,mpeg,mpegvideo,asf,mxf,nut,dv,rm,"
    "h264,hevc,m4v,ivf,yuv4mpegpipe"
)
_LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})
# What a network stream may open in turn: never file:, so that a playlist served by a camera
# or a web server cannot make FFmpeg read local files.
_NETWORK_PROTOCOLS = "rtsp,rtsps,rtp,srtp,udp,tcp,tls,http,https,httpproxy,crypto"
_AV_ERRORS = (av.error.FFmpegError, OSError, EOFError, ValueError)
_JOIN_S = 2.0
_PIPE_POLL_S = 0.1
_THREADED_PIXELS = 1280 * 720
_THREADED_CPUS = 4
_FALLBACK_FPS = 25.0
"""FFmpeg's own guess for a stream that declares no rate at all."""


@dataclass(frozen=True)
class VideoLimits:
    max_bytes: int = 4 * 1024**3
    """Size of a file or upload."""
    max_pixels: int = 3840 * 2160
    """Width × height of the video stream (declared, and of every decoded frame)."""
    max_duration_s: float = 6 * 3600.0
    stall_timeout_s: float = 10.0
    """Live sources: no frame for this long raises :class:`VideoStalled`."""


def limits_from(settings: Settings) -> VideoLimits:
    """The video limits a workspace's settings declare (``FACELEDGER_VIDEO_MAX_*``)."""
    return VideoLimits(
        max_bytes=settings.video_max_bytes,
        max_pixels=settings.video_max_pixels,
        max_duration_s=settings.video_max_seconds,
    )


@dataclass(frozen=True)
class VideoInfo:
    sha256: str | None
    """Of the file's bytes; None for a live device or URL."""
    container: str
    """FFmpeg's name of the demuxer, e.g. ``mov,mp4,m4a,3gp,3g2,mj2``."""
    codec: str
    width: int
    height: int
    fps: float
    """Average frame rate (FFmpeg's guess when the stream declares none)."""
    duration_s: float | None
    """Declared duration; None when the container does not say."""
    frames: int | None
    """Declared frame count; None when the container does not say."""


@dataclass(frozen=True, eq=False)
class Frame:
    index: int
    """Position among all decoded frames, from 0 (also the frames not sampled)."""
    time_s: float
    """Presentation time from the start of the stream."""
    pixels: Pixels = field(repr=False)
    """RGB uint8, C-contiguous."""


@dataclass
class _Input:
    """What to hand to ``av.open`` for one source, resolved and size-checked."""

    target: Any
    name: str
    sha256: str | None
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None

    def close(self) -> None:
        if isinstance(self.target, _PipeReader):
            self.target.close()


class _Sampler:
    """Keeps a frame when its time reaches the next sample time, on a grid of 1/fps steps;
    times, not indexes, so that variable frame rates sample evenly."""

    def __init__(self, sample_fps: float | None) -> None:
        self._step = 1.0 / sample_fps if sample_fps else None
        self._next = 0.0

    def take(self, time_s: float) -> bool:
        if self._step is None:
            return True
        if time_s + 1e-6 < self._next:
            return False
        # skip grid points a gap in the stream jumped over, rather than burst to catch up
        self._next += self._step * (math.floor((time_s - self._next) / self._step + 1e-9) + 1)
        return True


class _PipeReader:
    """A named pipe read without blocking, so that close() can stop a reader waiting on a
    silent writer (FFmpeg's timeouts do not interrupt a blocked read of a pipe)."""

    def __init__(self, path: Path, stop: threading.Event) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._stop = stop
        self._got_data = False

    def read(self, size: int) -> bytes:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], _PIPE_POLL_S)
            if not ready:
                continue
            try:
                data = os.read(self._fd, size)
            except BlockingIOError:
                continue
            if data:
                self._got_data = True
                return data
            if self._got_data:
                return b""  # the writer closed the pipe: end of stream
            # no writer yet: a pipe opened before its writer reads as empty
            self._stop.wait(_PIPE_POLL_S)
        return b""

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class VideoReader:
    """An opened video; iterating yields the sampled frames, streamed (iterate once).

    Use as a context manager, or call :meth:`close`; stopping the iteration early closes it too.
    """

    info: VideoInfo
    frames_decoded: int
    """Every frame decoded so far, sampled or not."""
    frames_sampled: int
    """Frames the sampling kept (for a live source, also those dropped afterwards)."""
    frames_dropped: int
    """Live only: sampled frames discarded because the consumer was behind."""

    def __init__(self, name: str, limits: VideoLimits, sample_fps: float | None) -> None:
        self._name = name
        self._limits = limits
        self._sample_fps = sample_fps
        self._iterated = False
        self.frames_decoded = 0
        self.frames_sampled = 0
        self.frames_dropped = 0

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise InvalidArgument(f"{self._name}: a VideoReader can be iterated only once")
        self._iterated = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _no_frames(self) -> BadVideo:
        return BadVideo(f"{self._name}: no decodable video frames")

    def close(self) -> None:
        raise NotImplementedError


class _FileReader(VideoReader):
    """A stored video, decoded in the consumer's thread as it iterates."""

    def __init__(
        self,
        container: InputContainer,
        stream: VideoStream,
        info: VideoInfo,
        name: str,
        limits: VideoLimits,
        sample_fps: float | None,
    ) -> None:
        super().__init__(name, limits, sample_fps)
        self.info = info
        self._container: InputContainer | None = container
        self._stream = stream

    def _frames(self) -> Iterator[Frame]:
        container = self._container
        if container is None:
            raise InvalidArgument(f"{self._name}: the video is closed")
        sampler = _Sampler(self._sample_fps)
        try:
            for index, time_s, frame in _decode(container, self._stream, self._name, self._limits):
                self.frames_decoded = index + 1
                if sampler.take(time_s):
                    self.frames_sampled += 1
                    yield Frame(index, time_s, _rgb(frame, self._name, index))
            if self.frames_decoded == 0:
                raise self._no_frames()
            self._check_complete()
        finally:
            self.close()

    def _check_complete(self) -> None:
        """A file cut short can end cleanly between two packets: compare with the frame count
        its header declares (with slack for edit lists and a last frame declared but absent)."""
        declared = self.info.frames
        if declared and self.frames_decoded < 0.9 * declared - 1:
            raise BadVideo(
                f"{self._name}: truncated: {self.frames_decoded} of the {declared} frames "
                "its header declares"
            )

    def close(self) -> None:
        if self._container is not None:
            container, self._container = self._container, None
            _close_quietly(container)


class _LiveReader(VideoReader):
    """A live source: a background thread decodes (at the source's pace when ``realtime``),
    samples, and hands frames over through a queue of at most :data:`QUEUE_FRAMES`."""

    queue_peak: int
    """The most frames the queue ever held (never above :data:`QUEUE_FRAMES`)."""

    def __init__(
        self,
        source: _Input,
        stop: threading.Event,
        limits: VideoLimits,
        sample_fps: float | None,
        realtime: bool,
    ) -> None:
        super().__init__(source.name, limits, sample_fps)
        self.queue_peak = 0
        self._input = source
        self._stop = stop
        self._realtime = realtime
        self._cond = threading.Condition()
        self._queue: deque[Frame] = deque()
        self._done = False
        self._open_error: BaseException | None = None
        self._error: BaseException | None = None
        self._opened = threading.Event()
        self._last_activity = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"video:{source.name}", daemon=True)
        self._thread.start()
        # The open itself may block (a pipe with no writer yet, a silent camera): it happens
        # in the thread, so the stall timeout applies to it as well.
        if not self._opened.wait(limits.stall_timeout_s):
            self.close()
            raise VideoStalled(
                f"{self._name}: the source opened no video within {limits.stall_timeout_s:g} s"
            )
        if self._open_error is not None:
            self.close()
            raise self._open_error

    def _run(self) -> None:
        container: InputContainer | None = None
        try:
            container = _open_container(self._input)
            stream = _video_stream(container, self._name)
            self.info = _read_info(container, stream, self._input.sha256, self._name, self._limits)
        except BaseException as exc:  # handed to open_video, which raises it
            self._open_error = exc
            self._finish(container)
            return
        self._last_activity = time.monotonic()
        self._opened.set()
        try:
            self._pump(container, stream)
        except BaseException as exc:  # handed to the consumer after the queued frames
            self._error = exc
        finally:
            self._finish(container)

    def _finish(self, container: InputContainer | None) -> None:
        if container is not None:
            _close_quietly(container)
        self._input.close()
        with self._cond:
            self._done = True
            self._cond.notify_all()
        self._opened.set()

    def _pump(self, container: InputContainer, stream: VideoStream) -> None:
        sampler = _Sampler(self._sample_fps)
        clock_origin: float | None = None
        for index, time_s, frame in _decode(container, stream, self._name, self._limits):
            if self._realtime:
                now = time.monotonic()
                if clock_origin is None:
                    clock_origin = now - time_s
                delay = clock_origin + time_s - now
                if delay > 0 and self._stop.wait(delay):
                    return
            if self._stop.is_set():
                return
            self.frames_decoded = index + 1
            self._last_activity = time.monotonic()
            if not sampler.take(time_s):
                continue
            item = Frame(index, time_s, _rgb(frame, self._name, index))
            with self._cond:
                if len(self._queue) >= QUEUE_FRAMES:
                    self._queue.popleft()
                    self.frames_dropped += 1
                self._queue.append(item)
                self.frames_sampled += 1
                self.queue_peak = max(self.queue_peak, len(self._queue))
                self._cond.notify_all()

    def _frames(self) -> Iterator[Frame]:
        stall = self._limits.stall_timeout_s
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._done:
                        remaining = self._last_activity + stall - time.monotonic()
                        if remaining <= 0:
                            raise VideoStalled(
                                f"{self._name}: no frame for {stall:g} s "
                                f"(after {self.frames_decoded} frames)"
                            )
                        self._cond.wait(remaining)
                    if not self._queue:
                        break
                    item = self._queue.popleft()
                yield item
            if self._error is not None:
                raise self._error
            if self.frames_decoded == 0:
                raise self._no_frames()
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            # A thread blocked inside FFmpeg on a network read ends at its read timeout; it
            # closes its container itself, so it is not waited for beyond this.
            self._thread.join(_JOIN_S)


def open_video(
    source: str | Path | bytes,
    limits: VideoLimits | None = None,
    *,
    sample_fps: float | None = None,
    live: bool = False,
    realtime: bool = False,
) -> VideoReader:
    """Open a video file or bytes (or, with ``live``, a device, URL, pipe or file) for
    streaming, refusing what breaks ``limits`` before any frame is decoded.

    ``sample_fps`` keeps frames on a time grid of that rate (None: every frame). ``realtime``
    (live only) releases a file's frames at their timestamps against the wall clock.
    """
    limits = limits or VideoLimits()
    if sample_fps is not None and not (math.isfinite(sample_fps) and sample_fps > 0):
        raise InvalidArgument(f"sample_fps must be a positive number, not {sample_fps}")
    if realtime and not live:
        raise InvalidArgument("realtime playback is a live mode: pass live=True")
    if not live:
        resolved = _resolve(source, limits, live=False, stop=None)
        container, stream, info = _open_checked(resolved, limits)
        return _FileReader(container, stream, info, resolved.name, limits, sample_fps)
    stop = threading.Event()
    resolved = _resolve(source, limits, live=True, stop=stop)
    # from here the reader's thread owns the input, and closes it when it ends
    return _LiveReader(resolved, stop, limits, sample_fps, realtime)


def probe_video(source: str | Path | bytes, limits: VideoLimits | None = None) -> VideoInfo:
    """Open a stored video, check it against ``limits``, decode its first frame (so that an
    undecodable codec is found now) and close it."""
    limits = limits or VideoLimits()
    resolved = _resolve(source, limits, live=False, stop=None)
    container, stream, info = _open_checked(resolved, limits)
    try:
        for _ in _decode(container, stream, resolved.name, limits):
            return info
        raise BadVideo(f"{resolved.name}: no decodable video frames")
    finally:
        _close_quietly(container)


def _open_checked(
    resolved: _Input, limits: VideoLimits
) -> tuple[InputContainer, VideoStream, VideoInfo]:
    container = _open_container(resolved)
    try:
        stream = _video_stream(container, resolved.name)
        info = _read_info(container, stream, resolved.sha256, resolved.name, limits)
    except BaseException:
        _close_quietly(container)
        raise
    return container, stream, info


def _resolve(
    source: str | Path | bytes, limits: VideoLimits, *, live: bool, stop: threading.Event | None
) -> _Input:
    """Size-check and hash a stored source, or check a live one's scheme or device."""
    if isinstance(source, bytes):
        data = source
        name = "<bytes>"
        if not data:
            raise BadVideo(f"{name}: empty file")
        if len(data) > limits.max_bytes:
            raise TooLarge(f"{name}: {len(data)} bytes; the limit is {limits.max_bytes}")
        digest = hashlib.sha256(data).hexdigest()
        return _Input(io.BytesIO(data), name, digest, options={"format_whitelist": _FILE_FORMATS})
    text = str(source)
    if "://" in text:
        return _resolve_url(text, limits, live=live)
    return _resolve_path(Path(source), limits, live=live, stop=stop)


def _resolve_url(url: str, limits: VideoLimits, *, live: bool) -> _Input:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    # never echo credentials or query strings: scheme, host and the last path segment only
    name = f"{scheme}://{parts.hostname or ''}/{parts.path.rsplit('/', 1)[-1]}"
    if not live:
        raise InvalidArgument(f"{name}: a URL is read only as a live source (live=True)")
    if scheme not in _LIVE_SCHEMES:
        raise InvalidArgument(f"{name}: live URLs must be rtsp://, rtsps:// or http(s)://")
    socket_timeout_us = str(int(limits.stall_timeout_s * 1_000_000))
    options = {"timeout": socket_timeout_us, "protocol_whitelist": _NETWORK_PROTOCOLS}
    if scheme.startswith("rtsp"):
        options["rtsp_transport"] = "tcp"
    return _Input(url, name, None, options=options, timeout=limits.stall_timeout_s)


def _resolve_path(
    path: Path, limits: VideoLimits, *, live: bool, stop: threading.Event | None
) -> _Input:
    name = path.name or str(path)
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise BadVideo(f"{name}: no such file") from exc
    except OSError as exc:
        raise BadVideo(f"{name}: cannot read ({exc.strerror})") from exc
    if stat.S_ISREG(st.st_mode):
        if st.st_size == 0:
            raise BadVideo(f"{name}: empty file")
        if st.st_size > limits.max_bytes:
            raise TooLarge(f"{name}: {st.st_size} bytes; the limit is {limits.max_bytes}")
        digest = _hash_file(path, name)
        return _Input(str(path), name, digest, options={"format_whitelist": _FILE_FORMATS})
    if live and stop is not None and stat.S_ISFIFO(st.st_mode):
        try:
            return _Input(_PipeReader(path, stop), name, None)
        except OSError as exc:
            raise BadVideo(f"{name}: cannot open the pipe ({exc.strerror})") from exc
    if live and stat.S_ISCHR(st.st_mode):
        device_format = "v4l2" if sys.platform.startswith("linux") else None
        return _Input(str(path), name, None, format=device_format)
    raise BadVideo(f"{name}: not a regular file")


def _hash_file(path: Path, name: str) -> str:
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise BadVideo(f"{name}: cannot read ({exc.strerror})") from exc


def _why(exc: BaseException) -> str:
    """FFmpeg's reason without the file name or bytes it may quote."""
    reason = getattr(exc, "strerror", None)
    return reason if isinstance(reason, str) and reason else type(exc).__name__


def _open_container(source: _Input) -> InputContainer:
    try:
        container: InputContainer = av.open(
            source.target,
            mode="r",
            format=source.format,
            options=source.options,
            timeout=source.timeout,
        )
        return container
    except _AV_ERRORS as exc:
        raise BadVideo(
            f"{source.name}: not a video FFmpeg can open "
            f"(unsupported, truncated or damaged: {_why(exc)})"
        ) from exc


def _video_stream(container: InputContainer, name: str) -> VideoStream:
    attached = av.stream.Disposition.attached_pic
    streams = [s for s in container.streams.video if not s.disposition & attached]
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        held = f" (it holds {', '.join(kinds)})" if kinds else ""
        raise BadVideo(f"{name}: no video stream{held}")
    stream = streams[0]
    if stream.codec_context is None:
        raise BadVideo(f"{name}: the video codec is one FFmpeg cannot decode")
    stream.thread_type = _thread_type(stream)
    return stream


def _thread_type(stream: VideoStream) -> str:
    """FFmpeg's frame and slice threads where they pay: on 640×480 H.264 (video_02.mp4) with
    two cores they cost more than they save (about 450 against 800 frames/s with RGB
    conversion), so small frames or few cores decode in one thread."""
    big = (stream.width or 0) * (stream.height or 0) >= _THREADED_PIXELS
    return "AUTO" if big and (os.cpu_count() or 1) >= _THREADED_CPUS else "NONE"


def _read_info(
    container: InputContainer,
    stream: VideoStream,
    sha256: str | None,
    name: str,
    limits: VideoLimits,
) -> VideoInfo:
    width, height = int(stream.width or 0), int(stream.height or 0)
    if width <= 0 or height <= 0:
        raise BadVideo(f"{name}: the video stream declares no frame size")
    if width * height > limits.max_pixels:
        raise TooLarge(
            f"{name}: {width}×{height} = {width * height} pixels per frame; "
            f"the limit is {limits.max_pixels}"
        )
    duration = _declared_duration(container, stream)
    if duration is not None and duration > limits.max_duration_s:
        raise TooLarge(f"{name}: {duration:.0f} s long; the limit is {limits.max_duration_s:g} s")
    frames = int(stream.frames) if stream.frames and stream.frames > 0 else None
    return VideoInfo(
        sha256=sha256,
        container=container.format.name,
        codec=stream.codec_context.name,
        width=width,
        height=height,
        fps=_rate(stream, duration, frames),
        duration_s=duration,
        frames=frames,
    )


def _declared_duration(container: InputContainer, stream: VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return float(container.duration / av.time_base)
    return None


def _rate(stream: VideoStream, duration: float | None, frames: int | None) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    if duration and frames:
        return frames / duration
    return _FALLBACK_FPS


def _decode(
    container: InputContainer, stream: VideoStream, name: str, limits: VideoLimits
) -> Iterator[tuple[int, float, VideoFrame]]:
    """Every frame with its index and time from the stream start, limits checked."""
    time_base = float(stream.time_base) if stream.time_base else 0.0
    origin = stream.start_time
    step = 1.0 / _rate(stream, None, None)
    frames = container.decode(stream)
    index = 0
    time_s = -step
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except _AV_ERRORS as exc:
            raise BadVideo(
                f"{name}: corrupt or truncated after frame {index} ({_why(exc)})"
            ) from exc
        if frame.width * frame.height > limits.max_pixels:
            raise TooLarge(
                f"{name}: frame {index} is {frame.width}×{frame.height}; "
                f"the limit is {limits.max_pixels} pixels"
            )
        if frame.pts is None or not time_base:
            time_s += step
        else:
            if origin is None:
                origin = frame.pts
            time_s = max(0.0, (frame.pts - origin) * time_base)
        if time_s > limits.max_duration_s:
            raise TooLarge(f"{name}: runs past the limit of {limits.max_duration_s:g} s")
        yield index, time_s, frame
        index += 1


def _rgb(frame: VideoFrame, name: str, index: int) -> Pixels:
    try:
        array = frame.to_ndarray(format="rgb24")
    except _AV_ERRORS as exc:
        raise BadVideo(f"{name}: cannot convert frame {index} to RGB ({_why(exc)})") from exc
    return np.ascontiguousarray(array, dtype=np.uint8)


def _close_quietly(container: InputContainer) -> None:
    with contextlib.suppress(*_AV_ERRORS):
        container.close()
