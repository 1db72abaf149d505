"""faceledger.video on real files with real FFmpeg (PyAV): decoding every sample codec,
sampling by time, refusing bad and oversized input, live mode, writing, the lead-annotated
copy and the composed test videos."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from faceledger.errors import BadVideo, InvalidArgument, TooLarge, VideoStalled
from faceledger.types import Pixels
from faceledger.video import (
    QUEUE_FRAMES,
    Appearance,
    DrawTrack,
    Shot,
    VideoLimits,
    VideoWriter,
    compose,
    default_scenario,
    draw_leads,
    face_box,
    obscure,
    open_video,
    probe_video,
    truth_json,
)

SAMPLES = {
    "video_01.mp4": "h264",
    "h264_aac.mp4": "h264",
    "h265_aac.mp4": "hevc",
    "mp4v_aac.mp4": "mpeg4",
    "xvid_aac.avi": "mpeg4",
    "vp8_opus.webm": "vp8",
    "theora_opus.ogg": "theora",
}
ONE_SECOND = "h264_aac.mp4"


@pytest.fixture(scope="module")
def videos(data_dir: Path) -> Path:
    return data_dir / "video"


@pytest.fixture(scope="module")
def london(data_dir: Path) -> Path:
    return data_dir / "london" / "images"


def _gradient(width: int, height: int, shift: int) -> Pixels:
    ys, xs = np.mgrid[0:height, 0:width]
    frame = np.stack([(xs * 2 + shift) % 256, (ys * 2) % 256, (xs + ys + shift) % 256], -1)
    return np.ascontiguousarray(frame, dtype=np.uint8)


def _laplacian_var(pixels: Pixels) -> float:
    g = pixels.astype(np.float64).mean(axis=2)
    lap = g[1:-1, 2:] + g[1:-1, :-2] + g[2:, 1:-1] + g[:-2, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def _crop(pixels: Pixels, box: tuple[int, int, int, int]) -> Pixels:
    left, top, right, bottom = box
    return pixels[top:bottom, left:right]


# --- decoding -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_codec_decodes(videos: Path, name: str) -> None:
    path = videos / name
    with open_video(path, sample_fps=10) as reader:
        info = reader.info
        frames = list(reader)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.codec == SAMPLES[name]
    assert info.container
    assert (info.width, info.height) == (640, 480)
    assert info.fps == pytest.approx(30000 / 1001, rel=1e-3)
    assert info.duration_s is not None and 0.9 < info.duration_s < 3.1
    assert reader.frames_decoded >= 29
    assert all(f.pixels.shape == (info.height, info.width, 3) for f in frames)
    assert all(f.pixels.dtype == np.uint8 and f.pixels.flags.c_contiguous for f in frames)
    assert reader.frames_sampled == len(frames)
    assert abs(len(frames) - info.duration_s * 10) <= 1.5
    assert frames[0].time_s == pytest.approx(0.0, abs=1e-6)


def test_sampling_is_by_time_and_counts_every_frame(videos: Path) -> None:
    path = videos / "video_01.mp4"
    with open_video(path, sample_fps=2) as reader:
        sampled = list(reader)
    assert reader.frames_decoded == 90
    assert [round(f.time_s * 2) / 2 for f in sampled] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    for i, f in enumerate(sampled):
        assert 0 <= f.time_s - i * 0.5 < 1.001 / 29.97 + 1e-6  # the first frame at or after
    assert [f.index for f in sampled] == [round(f.time_s * 30000 / 1001) for f in sampled]

    with open_video(path) as every:
        times = [f.time_s for f in every]
    assert len(times) == 90 == every.frames_sampled
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[-1] == pytest.approx(89 * 1001 / 30000)


def test_bytes_source_and_probe(videos: Path) -> None:
    path = videos / "vp8_opus.webm"
    data = path.read_bytes()
    with open_video(data, sample_fps=5) as reader:
        n = sum(1 for _ in reader)
    info = probe_video(path)
    assert reader.info == info
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.frames is None  # matroska declares no count
    assert n == 6


def test_a_reader_is_iterated_once_and_stopping_early_closes_it(videos: Path) -> None:
    reader = open_video(videos / ONE_SECOND)
    for _ in reader:
        break
    with pytest.raises(InvalidArgument):
        iter(reader)
    reader.close()  # idempotent


# --- bad input ----------------------------------------------------------------------------


def _audio_only(dest: Path) -> Path:
    with av.open(str(dest), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = np.zeros((1, 16000), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        frame.pts = 0
        frame.time_base = Fraction(1, 16000)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return dest


def _unknown_codec(videos: Path, dest: Path) -> Path:
    """The Xvid AVI with its codec tags replaced by one no decoder knows."""
    data = (videos / "xvid_aac.avi").read_bytes().replace(b"xvid", b"ZQZQ")
    strf = data.find(b"strf")
    data = data[: strf + 24] + b"ZQZQ" + data[strf + 28 :]  # biCompression of the header
    dest.write_bytes(data)
    return dest


def test_bad_input_is_bad_video(tmp_path: Path, videos: Path, london: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a video at all\n" * 50)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases: dict[Path | bytes, str] = {
        london / "001_neutral.jpg": "001_neutral.jpg",
        text: "notes.txt",
        empty: "empty",
        tmp_path / "missing.mp4": "no such file",
        b"": "empty",
        b"\x00\x01garbage" * 100: "<bytes>",
        _audio_only(tmp_path / "voice.m4a"): "no video stream",
        _unknown_codec(videos, tmp_path / "odd.avi"): "cannot decode",
    }
    for source, expected in cases.items():
        with pytest.raises(BadVideo) as caught, open_video(source) as reader:
            list(reader)
        message = str(caught.value)
        assert expected in message, message
        assert str(tmp_path) not in message  # the basename only
        assert caught.value.code == "bad_video"


@pytest.mark.parametrize("name", ["video_01.mp4", "h264_aac.mp4"])
def test_truncated_file_is_bad_video(tmp_path: Path, videos: Path, name: str) -> None:
    # video_01's index comes first (it opens, then ends early); h264_aac's comes last
    data = (videos / name).read_bytes()
    for cut in (0.3, 0.31, 0.5):
        part = tmp_path / f"cut_{cut}_{name}"
        part.write_bytes(data[: int(len(data) * cut)])
        expected = r"truncated|FFmpeg can open"
        with pytest.raises(BadVideo, match=expected), open_video(part) as reader:
            list(reader)


def test_limits_refuse_before_decoding(tmp_path: Path, videos: Path) -> None:
    path = videos / "video_01.mp4"
    for limits in (
        VideoLimits(max_bytes=100_000),
        VideoLimits(max_pixels=640 * 480 - 1),
        VideoLimits(max_duration_s=2.0),
    ):
        with pytest.raises(TooLarge):
            open_video(path, limits)
        with pytest.raises(TooLarge):
            probe_video(path.read_bytes(), limits)


def _raw_mpeg4(width: int, height: int, frames: int) -> bytes:
    """A raw MPEG-4 elementary stream: no container, so no declared duration."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="m4v") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(_gradient(width, height, i))))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def test_pixel_limit_applies_while_decoding() -> None:
    # two raw streams back to back: the header declares 160×120, frame 10 on is 320×240
    data = _raw_mpeg4(160, 120, 10) + _raw_mpeg4(320, 240, 10)
    with open_video(data) as reader:
        sizes = [f.pixels.shape[:2] for f in reader]
    assert sizes == [(120, 160)] * 10 + [(240, 320)] * 10
    small = VideoLimits(max_pixels=160 * 120)
    with pytest.raises(TooLarge, match="frame 10"), open_video(data, small) as reader:
        list(reader)


def test_duration_limit_applies_while_decoding(tmp_path: Path) -> None:
    # a raw MPEG-4 stream declares no duration: only decoding finds it is 2 s long
    raw = tmp_path / "raw.m4v"
    raw.write_bytes(_raw_mpeg4(160, 120, 50))
    with open_video(raw) as reader:
        assert reader.info.duration_s is None
        assert sum(1 for _ in reader) == 50
    short = VideoLimits(max_duration_s=1.0)
    with pytest.raises(TooLarge, match="runs past"), open_video(raw, short) as reader:
        list(reader)
    assert reader.frames_decoded == 26


def test_arguments_are_checked(videos: Path) -> None:
    path = videos / ONE_SECOND
    with pytest.raises(InvalidArgument):
        open_video(path, sample_fps=0)
    with pytest.raises(InvalidArgument):
        open_video(path, realtime=True)
    with pytest.raises(InvalidArgument, match="live"):
        open_video("rtsp://user:secret@camera.local/stream")
    with pytest.raises(InvalidArgument) as caught:
        open_video("ftp://user:secret@host/clip.mp4", live=True)
    assert "secret" not in str(caught.value)


# --- live ---------------------------------------------------------------------------------


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("video:")]


def test_live_realtime_plays_at_the_files_pace(videos: Path) -> None:
    path = videos / ONE_SECOND
    start = time.monotonic()
    with open_video(path, live=True, realtime=True) as reader:
        frames = list(reader)
    elapsed = time.monotonic() - start
    duration = reader.info.duration_s
    assert duration is not None
    assert elapsed >= 0.7 * duration
    assert len(frames) + reader.frames_dropped == reader.frames_sampled == 31
    assert reader.info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not _reader_threads()


def test_live_slow_consumer_drops_the_oldest_frames(videos: Path) -> None:
    with open_video(videos / ONE_SECOND, live=True, realtime=True) as reader:
        yielded = []
        for frame in reader:
            yielded.append(frame.index)
            time.sleep(0.2)
    assert reader.frames_dropped > 0
    assert len(yielded) + reader.frames_dropped == reader.frames_sampled == 31
    assert reader.queue_peak <= QUEUE_FRAMES  # type: ignore[attr-defined]
    assert yielded == sorted(yielded)
    # the oldest are dropped: the last frames of the file are the ones still delivered
    assert yielded[-1] == 30


def test_live_sampling_and_early_stop(videos: Path) -> None:
    start = time.monotonic()
    with open_video(videos / "video_01.mp4", live=True, realtime=True, sample_fps=1) as reader:
        first = next(iter(reader))
    assert first.index == 0
    assert time.monotonic() - start < 1.5  # close() did not wait for the 3 s of playback
    assert not _reader_threads()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_live_http_stream(videos: Path) -> None:
    handler = functools.partial(_QuietHandler, directory=str(videos))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/vp8_opus.webm?token=secret"
        with open_video(url, VideoLimits(stall_timeout_s=5.0), live=True) as reader:
            frames = list(reader)
        assert reader.info.sha256 is None
        assert reader.info.codec == "vp8"
        assert len(frames) + reader.frames_dropped == reader.frames_sampled == 31
        missing = url.replace("vp8_opus", "nothing")
        with pytest.raises(BadVideo) as caught:
            open_video(missing, VideoLimits(stall_timeout_s=5.0), live=True)
        assert "secret" not in str(caught.value)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "camera.fifo"
    os.mkfifo(path)
    yield path


def test_live_source_that_never_speaks_stalls(fifo: Path) -> None:
    # a pipe nobody writes to: even opening the container waits for data
    limits = VideoLimits(stall_timeout_s=1.0)
    start = time.monotonic()
    with pytest.raises(VideoStalled) as caught, open_video(fifo, limits, live=True) as reader:
        list(reader)
    assert 0.9 < time.monotonic() - start < 3.0
    assert caught.value.code == "video_stalled"
    time.sleep(0.3)
    assert not _reader_threads()


def test_live_source_that_stops_mid_stream_stalls(fifo: Path, videos: Path) -> None:
    data = (videos / "vp8_opus.webm").read_bytes()
    held: list[int] = []

    def writer() -> None:  # writes a whole clip, then keeps the pipe open and silent
        fd = os.open(fifo, os.O_WRONLY)
        held.append(fd)
        with contextlib.suppress(OSError):
            os.write(fd, data)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    limits = VideoLimits(stall_timeout_s=1.0)
    frames = 0
    try:
        with (
            pytest.raises(VideoStalled, match="no frame"),
            open_video(fifo, limits, live=True) as reader,
        ):
            for _ in reader:
                frames += 1
        assert reader.info.sha256 is None
        assert frames == reader.frames_decoded == 31
        time.sleep(0.3)
        assert not _reader_threads()
    finally:
        thread.join(5)
        for fd in held:
            os.close(fd)


# --- writing ------------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "codec"), [(".mp4", "mpeg4"), (".webm", "vp8")])
def test_writer_round_trip(tmp_path: Path, suffix: str, codec: str) -> None:
    dest = tmp_path / f"out{suffix}"
    written = [_gradient(160, 120, 7 * i) for i in range(20)]
    with VideoWriter(dest, 160, 120, 25.0) as writer:
        for pixels in written:
            writer.write(pixels)
    assert writer.frames_written == 20
    with open_video(dest) as reader:
        decoded = list(reader)
    assert reader.info.codec == codec
    assert (reader.info.width, reader.info.height, reader.info.fps) == (160, 120, 25.0)
    assert len(decoded) == 20
    assert decoded[-1].time_s == pytest.approx(19 / 25)
    error = np.abs(decoded[10].pixels.astype(int) - written[10].astype(int)).mean()
    assert error < 12


def test_writer_pads_odd_sizes_and_checks_its_input(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "odd.mkv", 161, 121, 30000 / 1001) as writer:
        for i in range(3):
            writer.write(_gradient(161, 121, i))
        with pytest.raises(InvalidArgument):
            writer.write(_gradient(160, 120, 0))
    info = probe_video(tmp_path / "odd.mkv")
    assert (info.width, info.height, info.codec) == (162, 122, "mpeg4")
    assert info.fps == pytest.approx(30000 / 1001)
    with pytest.raises(InvalidArgument, match="suffix"):
        VideoWriter(tmp_path / "clip.gif", 160, 120, 25.0)
    with pytest.raises(InvalidArgument):
        VideoWriter(tmp_path / "clip.mp4", 160, 120, 0.0)


# --- composed videos and the lead-annotated copy ------------------------------------------


def test_default_scenario_composes_with_its_ground_truth(tmp_path: Path, london: Path) -> None:
    appearances, shots, enrolled = default_scenario(london)
    assert enrolled == {"london:001", "london:005"}
    assert all(a.face_px >= 90 for a in appearances)
    dest = tmp_path / "scenario.mp4"
    compose(dest, appearances, shots)
    with open_video(dest, sample_fps=5) as reader:
        frames = list(reader)
    assert reader.info.codec == "mpeg4"
    assert reader.info.duration_s == pytest.approx(8.0)
    assert reader.frames_decoded == 200 and len(frames) == 40

    truth = truth_json(appearances, shots)
    assert json.loads(json.dumps(truth)) == truth
    assert truth["labels"] == ["london:001", "london:004", "london:005", "london:006"]
    assert truth["cuts"] == [4.0]
    spans = {(a["label"], a["start_s"], a["end_s"], a["shot"]) for a in truth["appearances"]}
    assert ("london:001", 0.2, 3.8, 0) in spans and ("london:001", 4.2, 7.6, 1) in spans

    # the cut is a large change of the colour histogram; frames within a shot are alike
    def hist(t: float) -> npt.NDArray[np.float64]:
        pixels = next(f.pixels for f in frames if f.time_s >= t - 1e-6)
        counts = np.histogramdd(pixels.reshape(-1, 3) // 32, bins=8, range=[(0, 8)] * 3)[0]
        normalised: npt.NDArray[np.float64] = counts.ravel() / counts.sum()
        return normalised

    # (at 0.0, 3.8 and 4.0 s nobody is on screen, so only the background counts)
    within = np.abs(hist(0.0) - hist(3.8)).sum()
    across = np.abs(hist(3.8) - hist(4.0)).sum()
    assert across > 1.0 > 5 * within, (across, within)

    # a face is drawn only inside its time range: at 0 s the frame is background only, so at
    # 1 s the face's box differs from it and a corner without anyone does not
    start = frames[0].pixels.astype(int)
    at_1s = next(f.pixels for f in frames if f.time_s >= 1.0 - 1e-6).astype(int)
    box = face_box(appearances[0], 1.0, 640, 480)
    region = (int(box.left), int(box.top), int(box.right), int(box.bottom))
    corner = (0, 380, 60, 480)
    assert np.abs(_crop(at_1s, region) - _crop(start, region)).mean() > 30
    assert np.abs(_crop(at_1s, corner) - _crop(start, corner)).mean() < 4


def test_appearances_may_not_span_a_cut(tmp_path: Path, london: Path) -> None:
    image = london / "001_smiling.jpg"
    shots = [Shot(0.0, 1.0, 1), Shot(1.0, 2.0, 2)]
    spanning = Appearance("london:001", image, 0.5, 1.5, (0.3, 0.3), (0.6, 0.3))
    with pytest.raises(InvalidArgument, match="shot boundary"):
        compose(tmp_path / "x.mp4", [spanning], shots)
    with pytest.raises(InvalidArgument, match="gaps"):
        compose(tmp_path / "x.mp4", [], [Shot(0.0, 1.0, 1), Shot(1.5, 2.0, 2)])


def test_draw_leads_keeps_only_the_leads_sharp(tmp_path: Path, london: Path) -> None:
    lead = Appearance("london:001", london / "001_smiling.jpg", 0.0, 1.2, (0.3, 0.35), (0.4, 0.35))
    other = Appearance("london:004", london / "004_smiling.jpg", 0.0, 2.0, (0.75, 0.6), (0.7, 0.6))
    source = tmp_path / "source.mp4"
    compose(source, [lead, other], [Shot(0.0, 2.0, 3)])
    keyframes = tuple((t, face_box(lead, t, 640, 480)) for t in (0.0, 0.6, 1.2))
    fractions: list[float] = []
    dest = tmp_path / "leads.mp4"
    written = draw_leads(
        source, dest, [DrawTrack("lead: london:001", keyframes)], progress=fractions.append
    )
    assert written == 50
    assert fractions == sorted(fractions) and fractions[-1] == 1.0

    src = {f.index: f.pixels for f in open_video(source)}
    out = {f.index: f.pixels for f in open_video(dest)}
    assert len(out) == 50

    t = 15  # 0.6 s: both on screen
    lead_box = face_box(lead, t / 25, 640, 480)
    inner = (
        int(lead_box.left) + 6,
        int(lead_box.top) + 6,
        int(lead_box.right) - 6,
        int(lead_box.bottom) - 6,
    )
    sharp_diff = np.abs(_crop(out[t], inner).astype(int) - _crop(src[t], inner)).mean()
    assert sharp_diff < 6
    assert _laplacian_var(_crop(out[t], inner)) > 0.5 * _laplacian_var(_crop(src[t], inner))

    ob = face_box(other, t / 25, 640, 480)
    other_box = (int(ob.left), int(ob.top), int(ob.right), int(ob.bottom))
    assert np.abs(_crop(out[t], other_box).astype(int) - _crop(src[t], other_box)).mean() > 12
    assert _laplacian_var(_crop(out[t], other_box)) < 0.05 * _laplacian_var(
        _crop(src[t], other_box)
    )

    # after the last keyframe + margin (1.2 + 0.25 s) nothing is sharp: the frame is obscured
    late = 40  # 1.6 s
    expected = obscure(src[late]).astype(int)
    assert np.abs(out[late].astype(int) - expected).mean() < 3

    with pytest.raises(InvalidArgument):
        draw_leads(source, source, [])
    assert source.stat().st_size > 0
