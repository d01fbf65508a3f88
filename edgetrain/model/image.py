"""Lay a ``Model``'s tensors out in a model image and describe it to the C core.

``layout`` is the one place that decides where tensors go: in layer order,
weights, then bias, then batch-norm parameters, each starting at a multiple of
``align`` bytes (the NVM program unit; at least 2 so int16 tensors are aligned).
Tensors are stored little-endian.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError
from .description import NO_TENSOR, Model


@dataclass(frozen=True)
class TensorOffsets:
    weight: int = NO_TENSOR
    bias: int = NO_TENSOR
    bn: int = NO_TENSOR


def _stored(array: np.ndarray) -> bytes:
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def layout(model: Model, align: int = 4, base: int = 0) -> tuple[bytes, list[TensorOffsets]]:
    """Pack the tensors; offsets count from the image start, which sits at ``base``
    bytes into the returned buffer (room a container header can use)."""
    if align < 2 or align & (align - 1):
        raise ArgumentError(f"align must be a power of two >= 2, got {align}")
    out = bytearray(base)
    offsets = []

    def place(array):
        if array is None:
            return NO_TENSOR
        out.extend(bytes(-len(out) % align))
        at = len(out) - base
        out.extend(_stored(array))
        return at

    for layer in model.layers:
        offsets.append(TensorOffsets(place(layer.weights), place(layer.bias), place(layer.bn)))
    out.extend(bytes(-len(out) % align))
    return bytes(out), offsets


def fill_c_table(ffi, c_model, model: Model, offsets: list[TensorOffsets], image, image_size: int) -> None:
    """Write the layer table of ``model`` into the cffi ``et_model_t *c_model``."""
    c_model.image = image
    c_model.image_size = image_size
    c_model.n_layers = len(model.layers)
    for index, (layer, off) in enumerate(zip(model.layers, offsets)):
        c = c_model.layers[index]
        c.kind, c.activation, c.padding = int(layer.kind), int(layer.activation), int(layer.padding)
        c.kernel, c.alpha_shift = layer.kernel, layer.alpha_shift
        for dst, src in ((getattr(c, "in"), layer.in_shape), (c.out, layer.out_shape)):
            dst.h, dst.w, dst.c, dst.fmt = src.h, src.w, src.c, src.fmt
        c.weight_offset, c.bias_offset, c.bn_offset = off.weight, off.bias, off.bn
