"""Video: decoding within limits, live sources, tracking, each track's best faces, writing,
and composed test videos. Searching and what is kept are the use cases' (``usecases.video``)."""

from faceledger.video.encode import CODECS, DrawTrack, VideoWriter, draw_leads, obscure
from faceledger.video.scan import (
    ScanSettings,
    TrackFace,
    TrackFaces,
    TrackTemplate,
    VideoScanner,
    fuse,
)
from faceledger.video.source import (
    QUEUE_FRAMES,
    Frame,
    VideoInfo,
    VideoLimits,
    VideoReader,
    limits_from,
    open_video,
    probe_video,
)
from faceledger.video.synth import (
    Appearance,
    Shot,
    compose,
    default_scenario,
    face_box,
    truth_json,
)

__all__ = [
    "CODECS",
    "QUEUE_FRAMES",
    "Appearance",
    "DrawTrack",
    "Frame",
    "ScanSettings",
    "Shot",
    "TrackFace",
    "TrackFaces",
    "TrackTemplate",
    "VideoInfo",
    "VideoLimits",
    "VideoReader",
    "VideoScanner",
    "VideoWriter",
    "compose",
    "default_scenario",
    "draw_leads",
    "face_box",
    "fuse",
    "limits_from",
    "obscure",
    "open_video",
    "probe_video",
    "truth_json",
]
