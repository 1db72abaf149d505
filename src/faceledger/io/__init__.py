"""Image input: decoding with limits, EXIF orientation, colour normalisation."""

from faceledger.io.decode import ImageLimits, decode_image, load_image

__all__ = ["ImageLimits", "decode_image", "load_image"]
