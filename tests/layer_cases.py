"""Shared helpers for the layer and training tests: random layers, C structs, C calls."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from edgetrain.model.description import Activation, Layer, LayerKind, Padding, Shape
from edgetrain.reference import layers as ref
from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS, FMT_BN_OUT, FMT_INPUT

ACT_FORMATS = [FMT_INPUT, FMT_ACT, FMT_BN_OUT]


def c_layer(ffi, layer: Layer):
    """An et_layer_t for one Layer (no tensor offsets)."""
    c = ffi.new("et_layer_t *")
    c.kind, c.activation, c.padding = int(layer.kind), int(layer.activation), int(layer.padding)
    c.kernel, c.alpha_shift = layer.kernel, layer.alpha_shift
    for dst, src in ((getattr(c, "in"), layer.in_shape), (c.out, layer.out_shape)):
        dst.h, dst.w, dst.c, dst.fmt = src.h, src.w, src.c, src.fmt
    c.weight_offset = c.bias_offset = c.bn_offset = 0xFFFFFFFF
    return c


_CTYPE = {np.dtype(t): f"{t}_t[]" for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")}


def buf(ffi, array: np.ndarray):
    """A typed C view of a contiguous NumPy array (writes go to the array)."""
    if not array.flags.c_contiguous:
        raise ValueError("buf() needs a C-contiguous array")
    return ffi.from_buffer(_CTYPE[array.dtype], array)


def out_array(shape: Shape) -> np.ndarray:
    return np.zeros((shape.h, shape.w, shape.c), dtype=ref.storage_dtype(shape.fmt))


def random_tensor(rng: np.random.Generator, shape: Shape, mode: str = "random") -> np.ndarray:
    """Values of an activation tensor: random over the whole storage range, or an edge fill."""
    dtype = ref.storage_dtype(shape.fmt)
    info = np.iinfo(dtype)
    size = (shape.h, shape.w, shape.c)
    if mode == "max":
        return np.full(size, info.max, dtype=dtype)
    if mode == "min":
        return np.full(size, info.min, dtype=dtype)
    if mode == "sparse":
        v = rng.integers(info.min, int(info.max) + 1, size=size).astype(dtype)
        return np.where(rng.random(size) < 0.7, 0, v).astype(dtype)
    return rng.integers(info.min, int(info.max) + 1, size=size).astype(dtype)


def random_int(rng, dtype, size, mode="random"):
    info = np.iinfo(dtype)
    if mode == "max":
        return np.full(size, info.max, dtype=dtype)
    if mode == "min":
        return np.full(size, info.min, dtype=dtype)
    if mode == "small":
        return rng.integers(-3, 4, size=size).astype(dtype)
    return rng.integers(info.min, int(info.max) + 1, size=size).astype(dtype)


modes = st.sampled_from(["random", "random", "random", "max", "min", "sparse", "small"])


@st.composite
def conv_layers(draw, relu=None, max_in_c=4, max_alpha=8):
    k = draw(st.sampled_from([1, 3, 3, 5]))
    padding = draw(st.sampled_from([Padding.VALID, Padding.SAME]))
    h = draw(st.integers(k if padding == Padding.VALID else 1, 9))
    w = draw(st.integers(k if padding == Padding.VALID else 1, 9))
    in_c = draw(st.integers(1, max_in_c))
    out_c = draw(st.integers(1, 5))
    fmt = draw(st.sampled_from(ACT_FORMATS))
    act = draw(st.sampled_from([Activation.RELU, Activation.NONE])) if relu is None else (Activation.RELU if relu else Activation.NONE)
    oh, ow = (h - k + 1, w - k + 1) if padding == Padding.VALID else (h, w)
    return Layer(LayerKind.CONV2D, Shape(h, w, in_c, fmt), Shape(oh, ow, out_c, FMT_ACT if act == Activation.RELU else FMT_BIAS),
                 "conv", act, padding, k, draw(st.integers(0, max_alpha)))


@st.composite
def dense_layers(draw, relu=None, max_m=64, max_alpha=8):
    m = draw(st.integers(1, max_m))
    n = draw(st.integers(1, 12))
    fmt = draw(st.sampled_from(ACT_FORMATS))
    act = draw(st.sampled_from([Activation.RELU, Activation.NONE])) if relu is None else (Activation.RELU if relu else Activation.NONE)
    return Layer(LayerKind.DENSE, Shape(1, 1, m, fmt), Shape(1, 1, n, FMT_ACT if act == Activation.RELU else FMT_BIAS),
                 "dense", act, alpha_shift=draw(st.integers(0, max_alpha)))


@st.composite
def pool_layers(draw):
    h, w, c = draw(st.integers(2, 11)), draw(st.integers(2, 11)), draw(st.integers(1, 4))
    return Layer(LayerKind.MAXPOOL2, Shape(h, w, c, FMT_ACT), Shape(h // 2, w // 2, c, FMT_ACT), "pool")


@st.composite
def bn_layers(draw):
    h, w, c = draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 5))
    return Layer(LayerKind.BATCHNORM, Shape(h, w, c, FMT_ACT), Shape(h, w, c, FMT_BN_OUT), "bn")


def head_layer(n: int) -> Layer:
    return Layer(LayerKind.SOFTMAX_CE, Shape(1, 1, n, FMT_BIAS), Shape(1, 1, n, FMT_BIAS), "head")
