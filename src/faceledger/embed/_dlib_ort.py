"""An ONNX embedder whose onnxruntime session uses a fixed number of threads.

Bulk work runs one process per core; each process's session must then stay on one thread,
or the runtime's thread pools (which spin while waiting) fight over the same cores.
"""

from __future__ import annotations

from faceledger.embed.base import Embedder
from faceledger.embed.onnx import OnnxEmbedder
from faceledger.errors import ModelError
from faceledger.models.card import ModelCard


class ThreadedOnnxEmbedder(OnnxEmbedder):
    """OnnxEmbedder with ``threads`` intra-op threads and no inter-op parallelism."""

    def __init__(self, card: ModelCard, *, flip_average: bool = False, threads: int = 1) -> None:
        Embedder.__init__(self, card, flip_average=flip_average)
        try:
            import onnxruntime as ort
        except ImportError as exc:  # optional extra
            raise ModelError(
                "ONNX models need onnxruntime: pip install 'faceledger[onnx]'"
            ) from exc
        path = card.file("embedder").verified_path(card.card_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load ONNX model {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name


def worker_embedder(card: ModelCard, *, flip_average: bool) -> Embedder | None:
    """The embedder a single-core worker process should use, or None for the default one."""
    if card.backend == "onnx":
        return ThreadedOnnxEmbedder(card, flip_average=flip_average, threads=1)
    return None
