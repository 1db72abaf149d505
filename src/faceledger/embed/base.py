"""The Embedder protocol: aligned chips in, L2-normalised templates of one model out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from faceledger.align import mirror
from faceledger.errors import ModelError
from faceledger.models.card import ModelCard
from faceledger.types import AlignedFace, Template


def l2_normalise(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: npt.NDArray[np.float32] = (vectors / norms).astype(np.float32)
    return out


class Embedder(ABC):
    def __init__(self, card: ModelCard) -> None:
        self.card = card

    @abstractmethod
    def _raw(self, chips: Sequence[AlignedFace]) -> npt.NDArray[np.float32]:
        """(n, dimension) raw embeddings for chips aligned to ``card.align``."""

    def embed(self, faces: Sequence[AlignedFace]) -> list[Template]:
        if not faces:
            return []
        if self.card.flip_average:
            # one batch of the chips and their mirror images (one runtime call, not two)
            both = self._raw([*faces, *(mirror(f) for f in faces)])
            vecs = both[: len(faces)] + both[len(faces) :]
        else:
            vecs = self._raw(faces)
        vecs = l2_normalise(vecs)
        if vecs.shape[1] != self.card.dimension:
            raise ModelError(
                f"model {self.card.id} produced {vecs.shape[1]}-d vectors, "
                f"its card says {self.card.dimension}"
            )
        return [Template(self.card.id, v.copy()) for v in vecs]


def make_embedder(card: ModelCard, *, jitter: int = 0) -> Embedder:
    """The embedder of ``card`` (its recipe, e.g. ``flip_average``, comes with the card)."""
    if card.backend == "dlib":
        from faceledger.embed.dlib_resnet import DlibEmbedder

        return DlibEmbedder(card, jitter=jitter)
    if card.backend == "onnx":
        from faceledger.embed.onnx import OnnxEmbedder

        return OnnxEmbedder(card)
    raise ModelError(f"model {card.id}: unknown backend {card.backend!r}")
