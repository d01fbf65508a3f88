"""Additions to et_model_check / check_model for the layer kernels: pooling only on ReLU
activations, and the size limits that keep the int32 accumulators exact."""
from __future__ import annotations

import pytest

from edgetrain import CorruptError, UnsupportedError
from edgetrain.model.description import Activation, Layer, LayerKind, Padding, Shape
from edgetrain.model.validate import check_layer
from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS, FMT_INPUT
from layer_cases import c_layer

ET_ERR_ARG, ET_ERR_CORRUPT, ET_ERR_UNSUPPORTED = -1, -3, -7


def conv(h, w, in_c, out_c, k=3):
    return Layer(LayerKind.CONV2D, Shape(h, w, in_c, FMT_ACT), Shape(h - k + 1, w - k + 1, out_c, FMT_ACT), "c", Activation.RELU, Padding.VALID, k, 0)


@pytest.mark.parametrize("layer, status, exc, message", [
    (conv(8, 8, 7282, 4), ET_ERR_UNSUPPORTED, UnsupportedError, "k\\*k\\*in_c = 65538"),  # fan-in 9 * 7282
    (conv(8, 8, 4, 7282), ET_ERR_UNSUPPORTED, UnsupportedError, "k\\*k\\*out_c = 65538"),  # fan-out
    (conv(259, 259, 1, 1), ET_ERR_UNSUPPORTED, UnsupportedError, "output pixels exceed 65536"),  # 257 x 257
    (Layer(LayerKind.MAXPOOL2, Shape(4, 4, 2, FMT_BIAS), Shape(2, 2, 2, FMT_BIAS), "p"), ET_ERR_CORRUPT, CorruptError, "after a conv with ReLU"),
    (Layer(LayerKind.MAXPOOL2, Shape(4, 4, 2, FMT_INPUT), Shape(2, 2, 2, FMT_INPUT), "p"), ET_ERR_CORRUPT, CorruptError, "after a conv with ReLU"),
])
def test_limits_rejected_alike(core, layer, status, exc, message):
    ffi, lib = core
    assert lib.et_layer_check(c_layer(ffi, layer)) == status
    with pytest.raises(exc, match=message):
        check_layer(layer, tensors=False)


def test_largest_allowed_sizes_pass(core):
    ffi, lib = core
    for layer in (conv(8, 8, 7281, 4), conv(258, 258, 1, 1)):  # 65529 taps; 256 x 256 pixels
        assert lib.et_layer_check(c_layer(ffi, layer)) == 0
        check_layer(layer, tensors=False)
    assert lib.et_layer_check(ffi.NULL) == ET_ERR_ARG
