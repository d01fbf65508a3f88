"""The layer-kind table (edgetrain/model/kinds.py): one complete entry per LayerKind, checked against the
C core where the C answers the same question, and a clear error for a kind the table lacks."""
from __future__ import annotations

import dataclasses
from enum import IntEnum

import numpy as np
import pytest

from edgetrain import UnsupportedError
from edgetrain.model import kinds
from edgetrain.model.description import Activation, Layer, LayerKind, Model, Padding, Shape
from edgetrain.model.presets import preset
from edgetrain.model.validate import check_layer
from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS, FMT_BN_OUT, FMT_INPUT
from layer_cases import c_layer

PRESETS = ("mlp", "mcu-cnn", "paper-cnn")


def one_of_each() -> list[Layer]:
    """A layer of every kind, each valid on its own (and a same-padded conv)."""
    return [
        Layer(LayerKind.CONV2D, Shape(8, 8, 2, FMT_INPUT), Shape(6, 6, 4, FMT_ACT), "conv", Activation.RELU, kernel=3),
        Layer(LayerKind.CONV2D, Shape(7, 7, 2, FMT_ACT), Shape(7, 7, 3, FMT_BIAS), "same", Activation.NONE, Padding.SAME,
              kernel=5),
        Layer(LayerKind.DENSE, Shape(1, 1, 36, FMT_ACT), Shape(1, 1, 10, FMT_BIAS), "fc"),
        Layer(LayerKind.MAXPOOL2, Shape(7, 5, 4, FMT_ACT), Shape(3, 2, 4, FMT_ACT), "pool"),
        Layer(LayerKind.BATCHNORM, Shape(6, 6, 4, FMT_ACT), Shape(6, 6, 4, FMT_BN_OUT), "bn"),
        Layer(LayerKind.FLATTEN, Shape(3, 3, 4, FMT_ACT), Shape(1, 1, 36, FMT_ACT), "flatten"),
        Layer(LayerKind.SOFTMAX_CE, Shape(1, 1, 10, FMT_BIAS), Shape(1, 1, 10, FMT_BIAS), "head"),
    ]


def test_every_layer_kind_has_a_complete_entry():
    assert set(kinds.KINDS) == set(LayerKind)
    for kind, spec in kinds.KINDS.items():
        assert spec.kind == kind
        for f in dataclasses.fields(spec):
            value = getattr(spec, f.name)
            assert value is not None or f.name == "group", f"{kind.name}: {f.name} is missing"
        assert spec.group in ("conv", "dense", None) and (spec.group is None) == (not spec.weights)
        assert spec.bias == spec.weights  # a weight layer has its bias, nothing else has one
    names = [s.name for s in kinds.KINDS.values()]
    ops = [s.export_op for s in kinds.KINDS.values()]
    assert len(set(names)) == len(names) and len(set(ops)) == len(ops)  # no kind reported or exported as another
    assert {layer.kind for layer in one_of_each()} == set(LayerKind)


def test_a_kind_missing_from_the_table_raises(monkeypatch):
    class Wider(IntEnum):
        DEPTHWISE = 7

    for kind in (Wider.DEPTHWISE, 7, 0, "conv"):
        with pytest.raises(UnsupportedError, match="not in the layer-kind table"):
            kinds.spec(kind)
    monkeypatch.delitem(kinds.KINDS, LayerKind.MAXPOOL2)
    pool = one_of_each()[3]
    for ask in (kinds.kind_name, kinds.has_weights, kinds.per_pixel_terms):
        with pytest.raises(UnsupportedError, match="maxpool2|MAXPOOL2|3"):
            ask(pool.kind if ask is kinds.kind_name else pool)
    with pytest.raises(UnsupportedError):
        kinds.forward_macs(Model("m", [pool]))
    with pytest.raises(UnsupportedError, match="lowers to no device layer kind"):
        kinds.kind_of_export_op("maxpool")
    with pytest.raises(UnsupportedError, match="no weight matrix"):
        kinds.weight_cols(one_of_each()[4])


def test_the_output_shape_rule_is_the_one_the_layers_have():
    for layer in one_of_each():
        check_layer(layer, tensors=False)  # the cases are valid layers: the rule is compared with real shapes
    for layer in one_of_each() + [layer for name in PRESETS for layer in preset(name, 0).layers]:
        o = layer.out_shape
        assert kinds.spec(layer.kind).out_hwc(layer) == (o.h, o.w, o.c), layer.name


def test_tensor_presence_and_bytes_match_the_c_core(core):
    ffi, lib = core
    wb, bb, nb = (ffi.new("uint32_t *") for _ in range(3))
    for layer in one_of_each() + [layer for name in PRESETS for layer in preset(name, 0).layers]:
        spec = kinds.spec(layer.kind)
        shapes = spec.tensor_shapes(layer)
        assert [shapes[t] is not None for t in kinds.TENSORS] == [spec.weights, spec.bias, spec.bn]
        assert lib.et_layer_tensor_bytes(c_layer(ffi, layer), wb, bb, nb) == 0
        size = {t: int(np.prod(shapes[t])) if shapes[t] else 0 for t in kinds.TENSORS}
        assert (wb[0], bb[0], nb[0]) == (size["weights"], 2 * size["bias"], 2 * size["bn"]), layer.name
        if spec.weights:
            assert kinds.weight_cols(layer) == size["weights"] // layer.out_shape.c


def test_forward_macs():
    assert kinds.forward_macs(preset("mlp", 0)) == 784 * 64 + 64 * 10
    assert kinds.forward_macs(preset("mcu-cnn", 0)) == 26 * 26 * 9 * 1 * 8 + 11 * 11 * 9 * 8 * 16 + 400 * 64 + 64 * 10
    same = one_of_each()[1]  # 7x7, k = 5, same padding: per axis 3+4+5+5+5+4+3 = 29 in-bounds taps
    assert kinds.spec(same.kind).macs(same) == 29 * 29 * 2 * 3


def test_export_ops_map_to_their_kinds():
    assert {op: kinds.kind_of_export_op(op) for op in ("conv", "dense", "maxpool", "bn", "flatten", "softmax")} == {
        "conv": LayerKind.CONV2D, "dense": LayerKind.DENSE, "maxpool": LayerKind.MAXPOOL2, "bn": LayerKind.BATCHNORM,
        "flatten": LayerKind.FLATTEN, "softmax": LayerKind.SOFTMAX_CE}
    with pytest.raises(UnsupportedError):
        kinds.kind_of_export_op("relu")
