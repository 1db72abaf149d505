"""Parse dlib's serialized face-recognition ResNet into a flat list of typed layers.

The file nests layers outermost first (loss, fc, pooling ... input); each layer's own fields
follow its subnetwork, so parsing recurses down to the input and collects layers bottom-up.
Tag and skip wrappers carry no id in the file: their ids come from the network's known
definition (dlib's ``anet_type`` in dnn_face_recognition_ex.cpp), checked layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from faceledger.embed._dlib_format import DlibReader

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class InputRGB:
    mean: tuple[float, float, float]
    """Per-channel (R, G, B) values subtracted before dividing by 256."""
    size: tuple[int, int]


@dataclass(frozen=True)
class Conv:
    weight: F32
    """(out, in, kh, kw); dlib's convolution is a cross-correlation like ONNX Conv."""
    bias: F32
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Affine:
    """Batch norm frozen for inference: ``gamma * x + beta`` per channel."""

    gamma: F32
    beta: F32


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Pool:
    kind: str
    """``max`` or ``avg``."""
    window: tuple[int, int]
    """(0, 0) means the whole input (dlib's avg_pool_everything)."""
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Fc:
    weight: F32
    """(inputs, outputs): output = flatten(x) @ weight (+ bias)."""
    bias: F32 | None


@dataclass(frozen=True)
class Tag:
    id: int


@dataclass(frozen=True)
class Skip:
    id: int
    """Continue from the output last tagged with this id."""


@dataclass(frozen=True)
class AddPrev:
    id: int
    """Add the output last tagged with this id (dlib zero-pads the smaller operand)."""


Layer = InputRGB | Conv | Affine | Relu | Pool | Fc | Tag | Skip | AddPrev


@dataclass(frozen=True)
class DlibNet:
    layers: tuple[Layer, ...]
    """Bottom-up: the input layer first, the final fully connected layer last."""
    loss: str


@dataclass(frozen=True)
class _Marker:
    """A tag or skip wrapper as found in the file (its kind and id are not stored)."""


@dataclass(frozen=True)
class _AddPrevRaw:
    pass


_Raw = InputRGB | Conv | Affine | Relu | Pool | Fc | _Marker | _AddPrevRaw


# -- dlib_face_recognition_resnet_model_v1's definition, bottom-up --------------------------


def _block(stride_tag: list[str]) -> list[str]:
    return ["tag1", "con", "affine", "relu", "con", "affine", *stride_tag]


def _ares() -> list[str]:
    return [*_block([]), "add_prev1", "relu"]


def _ares_down() -> list[str]:
    return [*_block(["tag2", "skip1", "avg_pool"]), "add_prev2", "relu"]


def resnet_v1_topology() -> list[str]:
    """Layer kinds of dlib's face ResNet from input to fc (tags/skips with their ids)."""
    seq = ["input", "con", "affine", "relu", "max_pool"]
    seq += _ares() * 3  # level 4: 32 filters
    seq += _ares_down() + _ares() * 3  # level 3: 64
    seq += _ares_down() + _ares() * 2  # level 2: 128
    seq += _ares_down() + _ares() * 2  # level 1: 256
    seq += _ares_down()  # level 0: 256
    seq += ["avg_pool", "fc"]
    return seq


# -- parsing --------------------------------------------------------------------------------


def _params_slice(
    r: DlibReader, params: F32, offset: int, shape: tuple[int, ...], what: str
) -> F32:
    flat = params.reshape(-1)
    n = int(np.prod(shape))
    if offset + n > flat.size:
        raise r.fail(f"{what}: parameter tensor too small for shape {shape}")
    out: F32 = flat[offset : offset + n].reshape(shape).copy()
    return out


def _doubles(r: DlibReader, n: int) -> None:
    for _ in range(n):
        r.real()


def _conv(r: DlibReader) -> Conv:
    params = r.tensor()
    num_filters, nr, nc = r.integer(), r.integer(), r.integer()
    stride = (r.integer(), r.integer())
    padding = (r.integer(), r.integer())
    fshape = r.alias_shape()
    bshape = r.alias_shape()
    _doubles(r, 4)  # learning-rate and weight-decay multipliers
    if fshape[0] != num_filters or fshape[2:] != (nr, nc):
        raise r.fail(f"con_: filter shape {fshape} disagrees with {num_filters}x{nr}x{nc}")
    n_filt = int(np.prod(fshape))
    if params.size != n_filt + num_filters or int(np.prod(bshape)) != num_filters:
        raise r.fail(f"con_: {params.size} parameters for filters {fshape} and biases {bshape}")
    weight = _params_slice(r, params, 0, fshape, "con_")
    bias = _params_slice(r, params, n_filt, (num_filters,), "con_")
    return Conv(weight, bias, stride, padding)


def _affine(r: DlibReader) -> Affine:
    params = r.tensor()
    gshape = r.alias_shape()
    bshape = r.alias_shape()
    mode = r.integer()
    if mode != 0 or gshape != bshape or gshape[0] != 1 or gshape[2:] != (1, 1):
        raise r.fail(f"affine_: only per-channel (conv mode) is supported, got {gshape}, {mode}")
    k = gshape[1]
    if params.size != 2 * k:
        raise r.fail(f"affine_: {params.size} parameters for {k} channels")
    return Affine(
        _params_slice(r, params, 0, (k,), "affine_"), _params_slice(r, params, k, (k,), "affine_")
    )


def _pool(r: DlibReader, kind: str) -> Pool:
    nr, nc = r.integer(), r.integer()
    stride = (r.integer(), r.integer())
    padding = (r.integer(), r.integer())
    return Pool(kind, (nr, nc), stride, padding)


def _fc(r: DlibReader) -> Fc:
    outputs, inputs = r.integer(), r.integer()
    params = r.tensor()
    wshape = r.alias_shape()
    r.alias_shape()  # biases
    bias_mode = r.integer()  # 0: has bias, 1: no bias
    _doubles(r, 4)
    if wshape[:2] != (inputs, outputs) or bias_mode not in (0, 1):
        raise r.fail(f"fc_: weights {wshape} for {inputs} -> {outputs}, bias mode {bias_mode}")
    n_w = inputs * outputs
    if params.size != n_w + (outputs if bias_mode == 0 else 0):
        raise r.fail(f"fc_: {params.size} parameters for {inputs} -> {outputs}")
    weight = _params_slice(r, params, 0, (inputs, outputs), "fc_")
    bias = _params_slice(r, params, n_w, (outputs,), "fc_") if bias_mode == 0 else None
    return Fc(weight, bias)


def _details(r: DlibReader) -> _Raw:
    name = r.string()
    if name == "con_4":
        return _conv(r)
    if name == "affine_":
        return _affine(r)
    if name == "relu_":
        return Relu()
    if name == "add_prev_":
        return _AddPrevRaw()
    if name in ("max_pool_2", "avg_pool_2"):
        return _pool(r, name[:3])
    if name == "fc_2":
        return _fc(r)
    raise r.fail(f"unsupported dlib layer {name!r}")


def _input(r: DlibReader) -> InputRGB:
    r.expect_string("input_rgb_image_sized")
    mean = (r.real(), r.real(), r.real())
    size = (r.integer(), r.integer())
    return InputRGB(mean, size)


def _layer_trailer(r: DlibReader, *, tensors: int) -> None:
    """Training state saved after each layer: three flags and cached tensors (ignored)."""
    for _ in range(3):
        r.boolean()
    for _ in range(tensors):
        r.tensor()


def _subnet(r: DlibReader, out: list[_Raw], depth: int = 0) -> None:
    if depth > 1000:
        raise r.fail("network nested too deeply")
    v = r.integer()
    if v == 1:  # add_tag_layer or add_skip_layer: only the subnetwork follows
        _subnet(r, out, depth + 1)
        out.append(_Marker())
        return
    if v not in (2, 3):
        raise r.fail(f"unsupported layer wrapper version {v}")
    head = r.peek_string()
    if head is not None and head.startswith("input"):
        out.append(_input(r))
        out.append(_details(r))
        _layer_trailer(r, tensors=3)  # x_grad, cached_output, grad_final
        if v == 3:
            r.integer()  # sample expansion factor
        return
    if v != 2:
        raise r.fail(f"unsupported add_layer version {v}")
    _subnet(r, out, depth + 1)
    out.append(_details(r))
    _layer_trailer(r, tensors=3)  # x_grad, cached_output, params_grad


def _resolve(r: DlibReader, raw: list[_Raw], expected: list[str]) -> list[Layer]:
    if len(raw) != len(expected):
        raise r.fail(f"found {len(raw)} layers, the face ResNet has {len(expected)}")
    kinds: dict[type, str] = {
        InputRGB: "input",
        Conv: "con",
        Affine: "affine",
        Relu: "relu",
        Fc: "fc",
    }
    layers: list[Layer] = []
    for i, (item, want) in enumerate(zip(raw, expected, strict=True)):
        if isinstance(item, _Marker):
            if want.startswith("tag"):
                layers.append(Tag(int(want[3:])))
            elif want.startswith("skip"):
                layers.append(Skip(int(want[4:])))
            else:
                raise r.fail(f"layer {i}: found a tag/skip wrapper where {want} belongs")
        elif isinstance(item, _AddPrevRaw):
            if not want.startswith("add_prev"):
                raise r.fail(f"layer {i}: found add_prev where {want} belongs")
            layers.append(AddPrev(int(want[8:])))
        elif isinstance(item, Pool):
            if want != f"{item.kind}_pool":
                raise r.fail(f"layer {i}: found {item.kind}_pool where {want} belongs")
            layers.append(item)
        else:
            found = kinds[type(item)]
            if found != want:
                raise r.fail(f"layer {i}: found {found} where {want} belongs")
            layers.append(item)
    return layers


def parse_face_resnet(data: bytes, source: str = "dlib model") -> DlibNet:
    """Parse ``dlib_face_recognition_resnet_model_v1.dat``; raises ModelError if it differs."""
    r = DlibReader(data, source)
    r.version(1)  # add_loss_layer
    loss = r.expect_string("loss_metric_2", "loss_metric_")
    if loss == "loss_metric_2":
        r.real()  # margin
        r.real()  # distance threshold
    raw: list[_Raw] = []
    _subnet(r, raw)
    if not r.at_end:
        raise r.fail("trailing bytes after the network")
    return DlibNet(tuple(_resolve(r, raw, resnet_v1_topology())), loss)
