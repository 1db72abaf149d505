"""dlib's HOG detector on several threads at once: the same boxes as one at a time, and the
detectors are kept between calls instead of rebuilt (each costs ~0.23 s with the GIL held)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from faceledger import Settings
from faceledger.detect import dlib_hog, make_detector
from faceledger.io.decode import load_image
from faceledger.types import Box, Pixels


def test_threads_find_the_same_faces_and_reuse_detectors(
    data_dir: Path, settings: Settings
) -> None:
    pixels = load_image(data_dir / "scenes" / "2008_001322.jpg").pixels
    # differently shifted copies, so that threads scan different pixels at the same time
    images = [np.ascontiguousarray(np.roll(pixels, 40 * i, axis=1)) for i in range(4)]
    detector = make_detector(settings)

    def boxes(image: Pixels) -> list[Box]:
        return [d.box for d in detector.detect(image)]

    alone = [boxes(im) for im in images]
    assert any(alone), "the test image shows no face"
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(boxes, images * 2)) == alone * 2
    kept = {id(h) for h in dlib_hog._idle}
    assert 1 <= len(kept) <= 4 + 1  # at most one per thread that ran at once
    with ThreadPoolExecutor(2) as fresh:  # new threads take the idle detectors
        assert list(fresh.map(boxes, images)) == alone
    assert {id(h) for h in dlib_hog._idle} == kept
