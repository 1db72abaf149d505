"""Build the ONNX graph equivalent to a parsed dlib face ResNet.

Input ``input``: (n, 3, H, W) float32 RGB in 0..255 (what OnnxEmbedder feeds with mean 0,
std 1); output ``embedding``: (n, 128), the raw fc output like dlib's descriptor. dlib's input
layer (per-channel mean, divide by 256) is the graph's first two nodes. Each frozen batch-norm
(``affine``) is folded into the convolution before it, an exact rewrite. Where a residual sum
meets operands of different sizes, the smaller one is zero-padded at the end, as dlib does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceledger.embed._dlib_net import (
    AddPrev,
    Affine,
    Conv,
    DlibNet,
    Fc,
    InputRGB,
    Layer,
    Pool,
    Relu,
    Skip,
    Tag,
)
from faceledger.errors import ModelError

OPSET = 17
IR_VERSION = 8
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"

Shape = tuple[int, int, int]
"""(channels, height, width) of one sample."""


@dataclass
class _Builder:
    helper: Any
    numpy_helper: Any
    nodes: list[Any] = field(default_factory=list)
    inits: list[Any] = field(default_factory=list)
    count: int = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, prefix: str, value: np.ndarray[Any, Any]) -> str:
        n = self.name(prefix)
        self.inits.append(self.numpy_helper.from_array(value, n))
        return n

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _out_size(size: int, window: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - window) // stride


def _fold(conv: Conv, affine: Affine | None) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    w = conv.weight.astype(np.float64)
    b = conv.bias.astype(np.float64)
    if affine is not None:
        g = affine.gamma.astype(np.float64)
        w = w * g[:, None, None, None]
        b = b * g + affine.beta.astype(np.float64)
    return w.astype(np.float32), b.astype(np.float32)


def _pad_to(b: _Builder, x: str, shape: Shape, target: Shape) -> str:
    if shape == target:
        return x
    extra = [t - s for s, t in zip(shape, target, strict=True)]
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
    return b.node("Pad", [x, b.const("pads", pads)], mode="constant")


def build_onnx(net: DlibNet, *, producer_version: str = "") -> Any:  # noqa: C901
    """An ``onnx.ModelProto`` computing the same descriptor as the dlib network."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:  # only exporting needs it; running needs onnxruntime
        raise ModelError("exporting to ONNX needs the onnx package: pip install onnx") from exc

    layers: list[Layer] = list(net.layers)
    first = layers[0]
    if not isinstance(first, InputRGB):
        raise ModelError("the dlib network does not start with an RGB input layer")
    b = _Builder(helper, numpy_helper)
    mean = np.array(first.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    x = b.node("Sub", [INPUT_NAME, b.const("mean", mean)])
    x = b.node("Mul", [x, b.const("scale", np.array(1.0 / 256.0, dtype=np.float32))])
    shape: Shape = (3, *first.size)
    tags: dict[int, tuple[str, Shape]] = {}
    i = 1
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            affine = nxt if isinstance(nxt, Affine) else None
            w, bias = _fold(layer, affine)
            i += 1 if affine is None else 2
            if w.shape[1] != shape[0]:
                raise ModelError(f"conv expects {w.shape[1]} channels, gets {shape[0]}")
            (sy, sx), (py, px) = layer.stride, layer.padding
            kh, kw = w.shape[2:]
            x = b.node(
                "Conv",
                [x, b.const("w", w), b.const("b", bias)],
                kernel_shape=[kh, kw],
                strides=[sy, sx],
                pads=[py, px, py, px],
            )
            shape = (w.shape[0], _out_size(shape[1], kh, sy, py), _out_size(shape[2], kw, sx, px))
            continue
        if isinstance(layer, Affine):  # not after a conv: apply as its own scale and shift
            g = b.const("gamma", layer.gamma.reshape(1, -1, 1, 1))
            x = b.node(
                "Add", [b.node("Mul", [x, g]), b.const("beta", layer.beta.reshape(1, -1, 1, 1))]
            )
        elif isinstance(layer, Relu):
            x = b.node("Relu", [x])
        elif isinstance(layer, Pool):
            if layer.window == (0, 0):
                if layer.kind != "avg":
                    raise ModelError("global max pooling is not supported")
                x = b.node("GlobalAveragePool", [x])
                shape = (shape[0], 1, 1)
            else:
                (wy, wx), (sy, sx), (py, px) = layer.window, layer.stride, layer.padding
                if py or px:
                    raise ModelError("padded pooling is not supported")
                op = "MaxPool" if layer.kind == "max" else "AveragePool"
                x = b.node(op, [x], kernel_shape=[wy, wx], strides=[sy, sx])
                shape = (shape[0], _out_size(shape[1], wy, sy, 0), _out_size(shape[2], wx, sx, 0))
        elif isinstance(layer, Tag):
            tags[layer.id] = (x, shape)
        elif isinstance(layer, Skip):
            x, shape = tags[layer.id]
        elif isinstance(layer, AddPrev):
            other, oshape = tags[layer.id]
            target: Shape = (
                max(shape[0], oshape[0]),
                max(shape[1], oshape[1]),
                max(shape[2], oshape[2]),
            )
            x = b.node("Add", [_pad_to(b, x, shape, target), _pad_to(b, other, oshape, target)])
            shape = target
        elif isinstance(layer, Fc):
            if layer.weight.shape[0] != shape[0] * shape[1] * shape[2]:
                raise ModelError(f"fc expects {layer.weight.shape[0]} inputs, gets {shape}")
            x = b.node("Flatten", [x], axis=1)
            x = b.node("MatMul", [x, b.const("fc", layer.weight)])
            if layer.bias is not None:
                x = b.node("Add", [x, b.const("fc_bias", layer.bias)])
            shape = (layer.weight.shape[1], 1, 1)
        else:
            raise ModelError(f"unexpected layer {type(layer).__name__}")
        i += 1
    b.nodes.append(helper.make_node("Identity", [x], [OUTPUT_NAME], name="output"))
    graph = helper.make_graph(
        b.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["n", 3, *first.size])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["n", shape[0]])],
        initializer=b.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="faceledger",
        producer_version=producer_version,
        doc_string="dlib_face_recognition_resnet_model_v1 converted by faceledger",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model
