"""Python mirror of et_model_check (csrc/src/model.c), on a ``Model``.

Raises the exception class matching the C status (CorruptError for an
inconsistent table, UnsupportedError for an unknown kind/activation/padding/
format) with a message naming the layer and what to fix. Image-level checks
(offsets, alignment, overlaps) are the C function's; ``model_image`` builds
images that pass them by construction.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import CorruptError, RangeError, UnsupportedError
from ..reference import fixed
from . import kinds
from .description import MAX_LAYERS, NO_TENSOR, Activation, Layer, LayerKind, Model, Padding, Shape

MAX_FAN = 65535  # ET_MAX_FAN
MAX_CONV_PIXELS = 65536  # ET_MAX_CONV_PIXELS


def _fail(index: int, layer: Layer | None, what: str, cls=CorruptError):
    label = f"layer {index}" + (f" ({layer.name or layer.kind.name.lower()})" if layer is not None else "")
    raise cls(f"{label}: {what}")


def _check_layer(index: int, layer: Layer, is_last: bool, tensors: bool = True) -> None:
    i, o = layer.in_shape, layer.out_shape
    try:
        kind = LayerKind(layer.kind)
        spec = kinds.spec(kind)
    except (ValueError, UnsupportedError):
        _fail(index, None, f"unknown layer kind {layer.kind}", UnsupportedError)
    for s, name in ((i, "input"), (o, "output")):
        if min(s.h, s.w, s.c) < 1:
            _fail(index, layer, f"{name} shape {s.h}x{s.w}x{s.c} has an empty dimension")
        if s.fmt not in fixed.FORMATS:
            _fail(index, layer, f"{name} format {s.fmt} is unknown", UnsupportedError)
    if (kind == LayerKind.SOFTMAX_CE) != is_last:
        _fail(index, layer, "the softmax cross-entropy head must be the last layer, and only the last")
    if spec.weights:
        if layer.activation not in tuple(Activation):
            _fail(index, layer, f"unknown activation {layer.activation}", UnsupportedError)
        if i.fmt not in (fixed.FMT_INPUT, fixed.FMT_ACT, fixed.FMT_BN_OUT):
            _fail(index, layer, f"input format {fixed.FORMAT_NAMES[i.fmt]} cannot feed a MAC layer", UnsupportedError)
        if not 0 <= layer.alpha_shift <= 15:
            _fail(index, layer, f"alpha_shift {layer.alpha_shift} is outside 0..15")
        want = fixed.FMT_ACT if layer.activation == Activation.RELU else fixed.FMT_BIAS
        if o.fmt != want:
            _fail(index, layer, f"output format must be {fixed.FORMAT_NAMES[want]} for activation {Activation(layer.activation).name}")
        if kind == LayerKind.DENSE:
            if (i.h, i.w, o.h, o.w) != (1, 1, 1, 1):
                _fail(index, layer, "a dense layer takes and gives 1x1xN tensors: put a flatten layer before it")
        else:
            k = layer.kernel
            if not 1 <= k <= 15:
                _fail(index, layer, f"kernel {k} is outside 1..15")
            if k * k * i.c > MAX_FAN or k * k * o.c > MAX_FAN:
                _fail(index, layer, f"k*k*in_c = {k * k * i.c} and k*k*out_c = {k * k * o.c} must be at most {MAX_FAN}: use fewer channels", UnsupportedError)
            if layer.padding == Padding.VALID:
                if i.h < k or i.w < k or (o.h, o.w) != (i.h - k + 1, i.w - k + 1):
                    _fail(index, layer, f"valid {k}x{k} conv of {i.h}x{i.w} gives {i.h - k + 1}x{i.w - k + 1}, not {o.h}x{o.w}")
            elif layer.padding == Padding.SAME:
                if k % 2 == 0 or (o.h, o.w) != (i.h, i.w):
                    _fail(index, layer, "same padding needs an odd kernel and keeps the spatial size")
            else:
                _fail(index, layer, f"unknown padding {layer.padding}", UnsupportedError)
            if o.h * o.w > MAX_CONV_PIXELS:
                _fail(index, layer, f"{o.h}x{o.w} output pixels exceed {MAX_CONV_PIXELS}: use a smaller input", UnsupportedError)
    elif kind == LayerKind.MAXPOOL2:
        if i.h < 2 or i.w < 2 or (o.h, o.w, o.c, o.fmt) != (i.h // 2, i.w // 2, i.c, i.fmt):
            _fail(index, layer, f"2x2 pooling of {i.h}x{i.w}x{i.c} gives {i.h // 2}x{i.w // 2}x{i.c}")
        if i.fmt != fixed.FMT_ACT:
            _fail(index, layer, "max pooling works on ReLU activations (activation format): put it after a conv with ReLU")
    elif kind == LayerKind.BATCHNORM:
        if i.fmt != fixed.FMT_ACT or o.fmt != fixed.FMT_BN_OUT or (o.h, o.w, o.c) != (i.h, i.w, i.c):
            _fail(index, layer, "batch norm maps an activation tensor to a bn_out tensor of the same shape")
    elif kind == LayerKind.FLATTEN:
        if (o.h, o.w, o.c, o.fmt) != (1, 1, i.h * i.w * i.c, i.fmt):
            _fail(index, layer, f"flatten of {i.h}x{i.w}x{i.c} gives 1x1x{i.h * i.w * i.c}")
    elif kind == LayerKind.SOFTMAX_CE:
        if (i.h, i.w) != (1, 1) or i.c < 2 or i.fmt != fixed.FMT_BIAS or i != o:
            _fail(index, layer, "the head takes 1x1xN logits (N >= 2) in the bias format and gives the same shape")
    if not tensors:
        return
    for name, shape in spec.tensor_shapes(layer).items():
        tensor = getattr(layer, name)
        if shape is None:
            if tensor is not None:
                _fail(index, layer, f"a {kind.name.lower()} layer has no {name} tensor")
        elif tensor is None or tuple(np.shape(tensor)) != shape:
            got = None if tensor is None else tuple(np.shape(tensor))
            _fail(index, layer, f"{name} must have shape {shape}, got {got}")
        else:
            _check_values(index, layer, name, np.asarray(tensor))


# Stored integer range of each tensor: int8 weights, int16 biases and batch-norm blocks.
TENSOR_RANGE = {"weights": (-128, 127, "int8"), "bias": (-32768, 32767, "int16"), "bn": (-32768, 32767, "int16")}


def _check_values(index: int, layer: Layer, name: str, tensor: np.ndarray) -> None:
    """A tensor must hold integers of its stored format: a float array (NaN, 0.5, ...) is never rounded here."""
    lo, hi, fmt = TENSOR_RANGE[name]
    if tensor.dtype.kind not in "iu":
        _fail(index, layer, f"{name} must be an integer array ({fmt} device values), got {tensor.dtype}; "
                            "quantize the model first (edgetrain export, or edgetrain.export.lower)", RangeError)
    if tensor.size and (int(tensor.min()) < lo or int(tensor.max()) > hi):
        _fail(index, layer, f"{name} values {int(tensor.min())}..{int(tensor.max())} do not fit {fmt} ({lo}..{hi}); "
                            "rescale or re-export the model", RangeError)


def check_layer(layer: Layer, tensors: bool = True) -> None:
    """Raise CorruptError/UnsupportedError if ``layer`` alone would fail et_layer_check
    (and, with ``tensors``, if its attached tensors have the wrong shapes)."""
    _check_layer(0, layer, layer.kind == LayerKind.SOFTMAX_CE, tensors)


# Bytes per stored element and alignment of each tensor: int8 weights, int16 biases and batch-norm blocks.
TENSOR_STORAGE = {"weights": (1, 1), "bias": (2, 2), "bn": (2, 2)}


def _geometry_bytes(layer: Layer) -> dict[str, tuple[int, int]]:
    """(bytes, alignment) of each tensor as et_layer_tensor_bytes sizes it from the layer's shapes."""
    out = {}
    for name, shape in kinds.spec(layer.kind).tensor_shapes(layer).items():
        size, align = TENSOR_STORAGE[name]
        out[name] = (size * math.prod(shape) if shape else 0, align)
    return out


def _check_extents(index: int, layer: Layer, offsets, image_size: int) -> None:
    """et_check_tensor: each tensor present exactly where the kind needs one, aligned, inside the image."""
    for (name, (nbytes, align)), offset in zip(_geometry_bytes(layer).items(), (offsets.weight, offsets.bias, offsets.bn)):
        if nbytes == 0:
            if offset != NO_TENSOR:
                _fail(index, layer, f"a {LayerKind(layer.kind).name.lower()} layer has no {name} tensor")
        elif offset == NO_TENSOR:
            _fail(index, layer, f"the layer needs its {name} tensor ({nbytes} bytes)")
        elif offset % align or offset > image_size or nbytes > image_size - offset:
            _fail(index, layer, f"its {name} ({nbytes} bytes at image offset {offset}) are misaligned or "
                                f"outside the {image_size}-byte image")


def check_model(model: Model, offsets=None, image_size: int = 0) -> None:
    """Raise CorruptError/UnsupportedError if ``model`` would fail et_model_check.

    Without ``offsets`` the tensors are the arrays attached to the layers, checked by shape. With
    ``offsets`` (the .etm reader: one TensorOffsets per layer into an ``image_size``-byte image) each
    layer's tensors are checked as et_model_check checks them, by the bytes the layer's shapes need
    at those offsets, in C's order, so that the first fault found, and its class, are C's."""
    n = len(model.layers)
    if not 1 <= n <= MAX_LAYERS:
        raise CorruptError(f"model {model.name!r} has {n} layers; 1..{MAX_LAYERS} are allowed")
    prev: Shape | None = None
    for index, layer in enumerate(model.layers):
        if prev is not None and layer.in_shape != prev:
            _fail(index, layer, f"input {layer.in_shape} does not match the previous output {prev}")
        _check_layer(index, layer, index == n - 1, tensors=offsets is None)
        if index == 0 and layer.in_shape.fmt != fixed.FMT_INPUT:
            _fail(0, layer, "the first layer must take the input format (uint8, LSB 2^-8)")
        if offsets is not None:
            _check_extents(index, layer, offsets[index], image_size)
        prev = layer.out_shape
