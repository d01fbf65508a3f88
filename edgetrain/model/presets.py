"""Named model presets with a seeded, deterministic He-style initialisation.

``preset(name, seed)`` returns a checked ``Model`` whose tensors are filled:

* weights: uniform integers over the whole int8 range ([-1, 1) in real
  terms). The layer scale alpha = 2^-alpha_shift (lrt-paper-spec §4,
  alpha = 2^floor(log2 sqrt(3 g / fan_in)), g = 2 before a ReLU, 1 for the
  logits) turns them into alpha * U[-1, 1): He's uniform initialisation with
  its limit sqrt(3 g / fan_in) rounded down to a power of two;
* biases 0; batch norm gamma = 1, beta = 0, statistics 0 (a fresh model).

The random integers come from a counter-based hash of (seed, tensor, index),
so they are the same on every platform and NumPy version.

Presets (docs/training.md):
  mcu-cnn    conv3x3 1->8 ReLU, pool, conv3x3 8->16 ReLU, pool, streaming BN(16),
             dense 400->64 ReLU, dense 64->10; 27,464 weights
  paper-cnn  the paper's network (spec §6.1): 4 valid 3x3 convs of 128 channels with
             two pool + streaming-BN blocks, dense 2048->512->10; 1,497,216 weights
  mlp        784-64-10 with ReLU; 50,816 weights
"""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError
from ..reference.fixed import FMT_ACT, FMT_BIAS, FMT_BN_OUT, FMT_INPUT
from .description import Activation, Layer, LayerKind, Model, Padding, Shape
from .validate import check_model

GAMMA_ONE = 1 << 12  # 1.0 in the bias format


def alpha_shift_for(fan_in: int, gain: int) -> int:
    """-floor(log2 sqrt(3 gain / fan_in)), at least 0: the smallest s >= 0 with
    fan_in <= 3 gain 4^s (exact integer arithmetic)."""
    if fan_in < 1 or gain < 1:
        raise ArgumentError(f"fan_in and gain must be positive, got {fan_in}, {gain}")
    s = 0
    while fan_in > 3 * gain * 4**s:
        s += 1
    return s


_M64 = (1 << 64) - 1


def hash_u64(seed: int, stream: int, count: int) -> np.ndarray:
    """count pseudo-random uint64 values for (seed, stream): the murmur3 64-bit
    finaliser applied to a counter mixed with the seed and stream."""
    with np.errstate(over="ignore"):
        key = np.uint64((int(seed) * 0x9E3779B97F4A7C15 + int(stream) * 0xC2B2AE3D27D4EB4F + 0x165667B19E3779F9) & _M64)
        x = np.arange(count, dtype=np.uint64) * np.uint64(0xD6E8FEB86659FD93) + key
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xC4CEB9FE1A85EC53)
        x ^= x >> np.uint64(33)
    return x


def uniform_int8(seed: int, stream: int, shape) -> np.ndarray:
    """Uniform integers over -128..127 (the top byte of each hash)."""
    count = int(np.prod(shape))
    return (hash_u64(seed, stream, count) >> np.uint64(56)).astype(np.uint8).view(np.int8).reshape(shape)


class _Builder:
    """Chains layers, deriving each input shape from the previous output."""

    def __init__(self, name: str, in_shape: Shape, seed: int):
        self.model = Model(name)
        self.shape = in_shape
        self.seed = seed
        self.tensors = 0

    def _add(self, layer: Layer) -> None:
        self.model.layers.append(layer)
        self.shape = layer.out_shape

    def _weights(self, shape) -> np.ndarray:
        self.tensors += 1
        return uniform_int8(self.seed, self.tensors, shape)

    def conv(self, name: str, out_c: int, k: int = 3, relu: bool = True, padding: Padding = Padding.VALID) -> None:
        i = self.shape
        oh, ow = (i.h - k + 1, i.w - k + 1) if padding == Padding.VALID else (i.h, i.w)
        fan_in = k * k * i.c
        self._add(Layer(LayerKind.CONV2D, i, Shape(oh, ow, out_c, FMT_ACT if relu else FMT_BIAS), name,
                        Activation.RELU if relu else Activation.NONE, padding, k, alpha_shift_for(fan_in, 2 if relu else 1),
                        self._weights((out_c, k, k, i.c)), np.zeros(out_c, np.int16)))

    def dense(self, name: str, out_c: int, relu: bool = True) -> None:
        i = self.shape
        self._add(Layer(LayerKind.DENSE, i, Shape(1, 1, out_c, FMT_ACT if relu else FMT_BIAS), name,
                        Activation.RELU if relu else Activation.NONE, alpha_shift=alpha_shift_for(i.c, 2 if relu else 1),
                        weights=self._weights((out_c, i.c)), bias=np.zeros(out_c, np.int16)))

    def pool(self, name: str) -> None:
        i = self.shape
        self._add(Layer(LayerKind.MAXPOOL2, i, Shape(i.h // 2, i.w // 2, i.c, i.fmt), name))

    def batchnorm(self, name: str) -> None:
        i = self.shape
        bn = np.zeros((4, i.c), np.int16)
        bn[0] = GAMMA_ONE
        self._add(Layer(LayerKind.BATCHNORM, i, Shape(i.h, i.w, i.c, FMT_BN_OUT), name, bn=bn))

    def flatten(self, name: str = "flatten") -> None:
        i = self.shape
        self._add(Layer(LayerKind.FLATTEN, i, Shape(1, 1, i.size, i.fmt), name))

    def head(self) -> Model:
        self._add(Layer(LayerKind.SOFTMAX_CE, self.shape, self.shape, "head"))
        check_model(self.model)
        return self.model


MNIST_INPUT = Shape(28, 28, 1, FMT_INPUT)


def mcu_cnn(seed: int = 0) -> Model:
    b = _Builder("mcu-cnn", MNIST_INPUT, seed)
    b.conv("conv1", 8)
    b.pool("pool1")
    b.conv("conv2", 16)
    b.pool("pool2")
    b.batchnorm("bn")
    b.flatten()
    b.dense("fc1", 64)
    b.dense("fc2", 10, relu=False)
    return b.head()


def paper_cnn(seed: int = 0) -> Model:
    """lrt-paper-spec §6.1. conv->pool->ReLU is built as conv(ReLU)->pool: the same
    forward values, since ReLU and the activation quantizer are monotone (docs/layers.md)."""
    b = _Builder("paper-cnn", MNIST_INPUT, seed)
    b.conv("conv1", 128)
    b.conv("conv2", 128)
    b.pool("pool1")
    b.batchnorm("bn1")
    b.conv("conv3", 128)
    b.conv("conv4", 128)
    b.pool("pool2")
    b.batchnorm("bn2")
    b.flatten()
    b.dense("fc1", 512)
    b.dense("fc2", 10, relu=False)
    return b.head()


def mlp(seed: int = 0) -> Model:
    b = _Builder("mlp", MNIST_INPUT, seed)
    b.flatten()
    b.dense("fc1", 64)
    b.dense("fc2", 10, relu=False)
    return b.head()


PRESETS = {"mcu-cnn": mcu_cnn, "paper-cnn": paper_cnn, "mlp": mlp}


def preset(name: str, seed: int = 0) -> Model:
    """The preset ``name`` initialised from ``seed``."""
    try:
        build = PRESETS[name]
    except KeyError:
        raise ArgumentError(f"unknown model preset {name!r}: choose one of {', '.join(PRESETS)}") from None
    if not 0 <= int(seed) < 1 << 32:
        raise ArgumentError(f"seed {seed} is outside 0..2^32-1")
    return build(int(seed))
