"""The one aligner every embedder uses: similarity transform of five landmarks to a chip."""

from faceledger.align.aligner import align_face, chip_mapping, mirror

__all__ = ["align_face", "chip_mapping", "mirror"]
