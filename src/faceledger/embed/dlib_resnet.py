"""dlib's ResNet face descriptor (128-d), run on chips from the shared aligner."""

from __future__ import annotations

from collections.abc import Sequence

import dlib
import numpy as np
import numpy.typing as npt

from faceledger.embed.base import Embedder
from faceledger.models.card import ModelCard
from faceledger.types import AlignedFace


class DlibEmbedder(Embedder):
    def __init__(self, card: ModelCard, *, jitter: int = 0) -> None:
        super().__init__(card)
        self.jitter = jitter
        path = card.file("embedder").verified_path(card.card_dir)
        self._net = dlib.face_recognition_model_v1(str(path))

    def _raw(self, chips: Sequence[AlignedFace]) -> npt.NDArray[np.float32]:
        batch = [c.chip for c in chips]
        out = self._net.compute_face_descriptor(batch, self.jitter)
        return np.asarray([np.asarray(v) for v in out], dtype=np.float32)
