"""Is this file a video? By its first bytes (uploads keep no name), else by its suffix.

Only containers FFmpeg reads as stored files are recognised; an image format that shares a
container (AVIF and HEIF are ISO media files, like MP4) is not a video.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["VIDEO_SUFFIXES", "is_video_file"]

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ogg", ".ogv", ".ts", ".mpg", ".mpeg"}
)

_STILL_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"})
"""ISO base media brands of still images (``ftyp`` boxes of AVIF and HEIF files)."""
_TS_PACKET = 188


def _sniff(head: bytes) -> bool | None:
    """True: a video container; False: certainly not; None: cannot tell from the bytes."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12] not in _STILL_BRANDS
    if head.startswith((b"\x1a\x45\xdf\xa3", b"OggS", b"FLV", b"\x00\x00\x01\xba")):
        return True
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return True
    if len(head) > _TS_PACKET and head[0] == 0x47 and head[_TS_PACKET] == 0x47:
        return True
    return None


def is_video_file(path: Path) -> bool:
    """Whether ``path`` holds a video (its content decides; the suffix when it cannot)."""
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(_TS_PACKET + 1)
    except OSError:
        return False
    found = _sniff(head)
    return Path(path).suffix.lower() in VIDEO_SUFFIXES if found is None else found
