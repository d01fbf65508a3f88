"""The Python model description, mirroring et_model.h field for field.

A ``Model`` is a list of ``Layer`` entries plus their integer tensors. The C
core sees the same table as ``et_model_t`` with tensors addressed by offsets
into a model image; the image is built from a ``Model`` (and parsed back)
elsewhere in this package. Enum values must equal the C ones (a test checks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

MAX_LAYERS = 32  # ET_MAX_LAYERS
NO_TENSOR = 0xFFFFFFFF  # ET_NO_TENSOR


class LayerKind(IntEnum):
    """et_layer_kind_t. What each kind is (name, tensors, rules) is the table of edgetrain/model/kinds.py."""

    CONV2D = 1
    DENSE = 2
    MAXPOOL2 = 3
    BATCHNORM = 4
    FLATTEN = 5
    SOFTMAX_CE = 6


class Activation(IntEnum):
    NONE = 0
    RELU = 1


class Padding(IntEnum):
    VALID = 0
    SAME = 1


@dataclass(frozen=True)
class Shape:
    """An activation tensor: h x w x c elements (HWC) of format ``fmt`` (reference.fixed.FMT_*)."""

    h: int
    w: int
    c: int
    fmt: int

    @property
    def size(self) -> int:
        return self.h * self.w * self.c


@dataclass
class Layer:
    """One row of the layer table. Tensors are NumPy arrays of their storage type:
    ``weights`` int8 (conv: [out_c, k, k, in_c]; dense: [n, m]), ``bias`` int16 [n],
    ``bn`` int16 [4, c] (gamma, beta, mean, mean square)."""

    kind: LayerKind
    in_shape: Shape
    out_shape: Shape
    name: str = ""
    activation: Activation = Activation.NONE
    padding: Padding = Padding.VALID
    kernel: int = 0
    alpha_shift: int = 0
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    bn: np.ndarray | None = None

    @property
    def trainable(self) -> bool:
        return self.weights is not None

    @property
    def n(self) -> int:
        """Rows of the weight matrix (outputs)."""
        return int(self.weights.shape[0]) if self.weights is not None else 0

    @property
    def m(self) -> int:
        """Columns of the weight matrix (inputs; k*k*in_c for conv)."""
        return int(self.weights.reshape(self.weights.shape[0], -1).shape[1]) if self.weights is not None else 0


@dataclass
class Model:
    name: str
    layers: list[Layer] = field(default_factory=list)

    @property
    def input_shape(self) -> Shape:
        return self.layers[0].in_shape

    @property
    def n_classes(self) -> int:
        return self.layers[-1].out_shape.c

    def trainable_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.trainable]

    def n_weights(self) -> int:
        return sum(layer.weights.size for layer in self.trainable_layers())
