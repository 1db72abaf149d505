"""ArcFace-family embedders exported to ONNX, loaded from a local path with a checksum.

The card's ``input`` gives the chip size, reference landmarks, and the normalisation
``(pixel - mean) / std``; the graph takes NCHW float32 RGB and returns (n, dimension).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from faceledger.embed.base import Embedder
from faceledger.errors import ModelError
from faceledger.models.card import ModelCard
from faceledger.types import AlignedFace


class OnnxEmbedder(Embedder):
    """An ONNX embedder on onnxruntime's CPU provider.

    ``threads=None`` keeps onnxruntime's own thread pools (sized to the machine). A number
    pins the session to that many intra-op threads with no inter-op parallelism and
    sequential execution: one process per core then keeps the runtime's spinning pools from
    fighting over the same cores.
    """

    def __init__(
        self,
        card: ModelCard,
        *,
        threads: int | None = None,
        model: bytes | None = None,
    ) -> None:
        super().__init__(card)
        try:
            import onnxruntime as ort
        except ImportError as exc:  # optional extra
            raise ModelError(
                "ONNX models need onnxruntime, a dependency of faceledger: reinstall it"
            ) from exc
        # ``model``: the graph's bytes, already checked against the card's sha256 by the caller
        source: bytes | str = (
            model if model is not None else str(card.file("embedder").verified_path(card.card_dir))
        )
        opts = ort.SessionOptions()
        # idle pool threads spin by default: 16 ms of CPU per face instead of 5.7 (measured on
        # 2 cores, one face per call as a search makes), for 0.4 ms less latency
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(
                source, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load ONNX model of {card.id}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name

    def _raw(self, chips: Sequence[AlignedFace]) -> npt.NDArray[np.float32]:
        batch = np.stack([c.chip for c in chips]).astype(np.float32)
        batch = (batch - self.card.input_mean) / self.card.input_std
        batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        (out,) = self._session.run(None, {self._input: batch})[:1]
        return np.asarray(out, dtype=np.float32).reshape(len(chips), -1)
