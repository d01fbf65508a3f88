"""One table of what each layer kind is, for every Python layer that asks.

``KINDS[kind]`` holds, per ``LayerKind``: the name reports give it, which tensors it stores, whether its
weight gradient is one term per output pixel (a conv: the LRT batch size ``batch_conv``, the conv dW
buffer of the SGD plan) or one term per sample (a dense layer: ``batch_dense``), whether the forward
pass keeps its output for the backward pass, the float operation of ``edgetrain.export.lower`` it is
made from, and its rules: the output shape it gives, the shapes of its tensors and its forward
multiply-accumulates. The C core keeps its own switch statements (csrc/src/model.c, layers.c, plan.c,
train.c); this table is the Python side's single answer, and ``spec`` raises UnsupportedError for a kind
it does not hold instead of treating it as another. docs/layers.md lists what a new kind touches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UnsupportedError
from .description import Layer, LayerKind, Model, Padding

TENSORS = ("weights", "bias", "bn")


def _conv_hwc(layer: Layer) -> tuple[int, int, int]:
    i, k = layer.in_shape, layer.kernel
    if layer.padding == Padding.SAME:
        return i.h, i.w, layer.out_shape.c
    return i.h - k + 1, i.w - k + 1, layer.out_shape.c


def _conv_tensors(layer: Layer) -> dict:
    return {"weights": (layer.out_shape.c, layer.kernel, layer.kernel, layer.in_shape.c), "bias": (layer.out_shape.c,),
            "bn": None}


def _conv_macs(layer: Layer) -> int:
    """Every in-bounds kernel tap of every output pixel (a same-padded conv skips the padding)."""
    i, o, k = layer.in_shape, layer.out_shape, layer.kernel
    pad = (k - 1) // 2 if layer.padding == Padding.SAME else 0
    rows = sum(1 for oy in range(o.h) for ky in range(k) if 0 <= oy + ky - pad < i.h)
    cols = sum(1 for ox in range(o.w) for kx in range(k) if 0 <= ox + kx - pad < i.w)
    return rows * cols * i.c * o.c


def _no_tensors(layer: Layer) -> dict:
    return dict.fromkeys(TENSORS)


def _no_macs(layer: Layer) -> int:
    return 0


def _same_hwc(layer: Layer) -> tuple[int, int, int]:
    return layer.in_shape.h, layer.in_shape.w, layer.in_shape.c


@dataclass(frozen=True)
class KindSpec:
    """What one layer kind is (see the module docstring)."""

    kind: LayerKind
    name: str  # the label of reports (`edgetrain plan` layers, the planner's per-layer figures)
    weights: bool  # an int8 weight matrix [n, m] in NVM (n = out_c; m = k k in_c for a conv, in_c for a dense layer)
    bias: bool  # an int16 bias [n]
    bn: bool  # an int16 batch-norm block [4, c]
    group: str | None  # "conv": one gradient term per output pixel (B = batch_conv); "dense": one per sample
    #                    (B = batch_dense); None: no weights to train
    saves_output: bool  # the forward pass keeps its output for the backward pass (plan part "activations")
    export_op: str  # the float operation (edgetrain.export.lower.FloatOp.kind) lowered to this kind
    out_hwc: Callable[[Layer], tuple[int, int, int]]  # the output (h, w, c) from the input and the parameters
    tensor_shapes: Callable[[Layer], dict]  # weights / bias / bn: the stored array's shape, or None
    macs: Callable[[Layer], int]  # multiply-accumulates of one forward pass


KINDS: dict[LayerKind, KindSpec] = {s.kind: s for s in (
    KindSpec(LayerKind.CONV2D, "conv", weights=True, bias=True, bn=False, group="conv", saves_output=True,
             export_op="conv", out_hwc=_conv_hwc, tensor_shapes=_conv_tensors, macs=_conv_macs),
    KindSpec(LayerKind.DENSE, "dense", weights=True, bias=True, bn=False, group="dense", saves_output=True,
             export_op="dense", out_hwc=lambda layer: (1, 1, layer.out_shape.c),
             tensor_shapes=lambda layer: {"weights": (layer.out_shape.c, layer.in_shape.c),
                                          "bias": (layer.out_shape.c,), "bn": None},
             macs=lambda layer: layer.in_shape.c * layer.out_shape.c),
    KindSpec(LayerKind.MAXPOOL2, "maxpool2", weights=False, bias=False, bn=False, group=None, saves_output=True,
             export_op="maxpool", out_hwc=lambda layer: (layer.in_shape.h // 2, layer.in_shape.w // 2, layer.in_shape.c),
             tensor_shapes=_no_tensors, macs=_no_macs),
    KindSpec(LayerKind.BATCHNORM, "batchnorm", weights=False, bias=False, bn=True, group=None, saves_output=True,
             export_op="bn", out_hwc=_same_hwc,
             tensor_shapes=lambda layer: {"weights": None, "bias": None, "bn": (4, layer.in_shape.c)}, macs=_no_macs),
    KindSpec(LayerKind.FLATTEN, "flatten", weights=False, bias=False, bn=False, group=None, saves_output=False,
             export_op="flatten", out_hwc=lambda layer: (1, 1, layer.in_shape.size), tensor_shapes=_no_tensors,
             macs=_no_macs),
    KindSpec(LayerKind.SOFTMAX_CE, "softmax_ce", weights=False, bias=False, bn=False, group=None, saves_output=False,
             export_op="softmax", out_hwc=_same_hwc, tensor_shapes=_no_tensors, macs=_no_macs),
)}


def spec(kind) -> KindSpec:
    """The table entry of ``kind`` (a LayerKind or its value); UnsupportedError for a kind the table lacks."""
    try:
        return KINDS[LayerKind(kind)]
    except (ValueError, KeyError):
        known = ", ".join(f"{int(k)} ({s.name})" for k, s in KINDS.items())
        raise UnsupportedError(f"layer kind {kind!r} is not in the layer-kind table (edgetrain/model/kinds.py); "
                               f"known kinds: {known}. A new kind needs its entry there (docs/layers.md)") from None


def kind_name(kind) -> str:
    """The report label of ``kind`` (``conv``, ``dense``, ``maxpool2``, ...)."""
    return spec(kind).name


def has_weights(layer: Layer) -> bool:
    """The layer stores a weight matrix (and trains it)."""
    return spec(layer.kind).weights


def weight_cols(layer: Layer) -> int:
    """m, the columns of the layer's [n, m] weight matrix (k k in_c for a conv, in_c for a dense layer)."""
    shape = spec(layer.kind).tensor_shapes(layer)["weights"]
    if shape is None:
        raise UnsupportedError(f"a {kind_name(layer.kind)} layer has no weight matrix")
    cols = 1
    for d in shape[1:]:
        cols *= d
    return cols


def per_pixel_terms(layer: Layer) -> bool:
    """The weight gradient has one rank-1 term per output pixel (a conv), not one per sample."""
    return spec(layer.kind).group == "conv"


def kind_of_export_op(op: str) -> LayerKind:
    """The device kind the float operation ``op`` of edgetrain.export.lower becomes."""
    for s in KINDS.values():
        if s.export_op == op:
            return s.kind
    raise UnsupportedError(f"float operation {op!r} lowers to no device layer kind")


def forward_macs(model: Model) -> int:
    """Multiply-accumulates of one forward pass of ``model``."""
    return sum(spec(layer.kind).macs(layer) for layer in model.layers)
