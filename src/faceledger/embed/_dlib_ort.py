"""An ONNX embedder whose onnxruntime session uses a fixed number of threads.

Bulk work runs one process per core; each process's session must then stay on one thread,
or the runtime's thread pools (which spin while waiting) fight over the same cores.
"""

from __future__ import annotations

from faceledger.embed.base import Embedder
from faceledger.embed.onnx import OnnxEmbedder
from faceledger.models.card import ModelCard


class ThreadedOnnxEmbedder(OnnxEmbedder):
    """OnnxEmbedder with ``threads`` intra-op threads and no inter-op parallelism.

    A name for the pinned configuration (``threads`` defaults to one, what a single-core
    worker needs); the session itself is built by :class:`OnnxEmbedder`.
    """

    def __init__(self, card: ModelCard, *, flip_average: bool = False, threads: int = 1) -> None:
        super().__init__(card, flip_average=flip_average, threads=threads)


def worker_embedder(card: ModelCard, *, flip_average: bool) -> Embedder | None:
    """The embedder a single-core worker process should use, or None for the default one."""
    if card.backend == "onnx":
        return ThreadedOnnxEmbedder(card, flip_average=flip_average, threads=1)
    return None
