"""et_model_check (C) and check_model (Python) accept sound tables and reject
broken ones with the same error class."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from edgetrain import CorruptError, UnsupportedError
from edgetrain.model import Activation, Layer, LayerKind, Model, Padding, Shape
from edgetrain.model.image import TensorOffsets, fill_c_table, layout
from edgetrain.model.validate import check_model
from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS, FMT_BN_OUT, FMT_INPUT

ET_OK, ET_ERR_ARG, ET_ERR_CORRUPT, ET_ERR_UNSUPPORTED = 0, -1, -3, -7


def tiny_model() -> Model:
    """conv 3x3 (1->2, ReLU) -> pool -> BN -> flatten -> dense 8->3 -> softmax CE."""
    rng = np.random.default_rng(0)
    w = lambda *s: rng.integers(-128, 128, s, dtype=np.int8)  # noqa: E731
    b = lambda *s: rng.integers(-500, 500, s, dtype=np.int16)  # noqa: E731
    return Model(
        "tiny",
        [
            Layer(LayerKind.CONV2D, Shape(6, 6, 1, FMT_INPUT), Shape(4, 4, 2, FMT_ACT), "conv", Activation.RELU, Padding.VALID, 3, 1, w(2, 3, 3, 1), b(2)),
            Layer(LayerKind.MAXPOOL2, Shape(4, 4, 2, FMT_ACT), Shape(2, 2, 2, FMT_ACT), "pool"),
            Layer(LayerKind.BATCHNORM, Shape(2, 2, 2, FMT_ACT), Shape(2, 2, 2, FMT_BN_OUT), "bn", bn=b(4, 2)),
            Layer(LayerKind.FLATTEN, Shape(2, 2, 2, FMT_BN_OUT), Shape(1, 1, 8, FMT_BN_OUT), "flatten"),
            Layer(LayerKind.DENSE, Shape(1, 1, 8, FMT_BN_OUT), Shape(1, 1, 3, FMT_BIAS), "fc", Activation.NONE, alpha_shift=2, weights=w(3, 8), bias=b(3)),
            Layer(LayerKind.SOFTMAX_CE, Shape(1, 1, 3, FMT_BIAS), Shape(1, 1, 3, FMT_BIAS), "head"),
        ],
    )


class CModel:
    """A model table and its image as the C core sees them."""

    def __init__(self, ffi, model, offsets=None, image=None):
        data, auto = layout(model)
        self.image = ffi.new("uint8_t[]", image if image is not None else data)
        self.c = ffi.new("et_model_t *")
        fill_c_table(ffi, self.c, model, offsets or auto, self.image, len(self.image))


def c_check(core, model, **kw):
    ffi, lib = core
    cm = CModel(ffi, model, **kw)
    bad = ffi.new("uint16_t *", 999)
    return lib.et_model_check(cm.c, bad), bad[0]


def test_sound_model_passes_both(core):
    model = tiny_model()
    check_model(model)
    assert c_check(core, model) == (ET_OK, 999)


def mutate(fn):
    m = copy.deepcopy(tiny_model())
    fn(m)
    return m


def set_out(m, i, **kw):
    m.layers[i].out_shape = Shape(**{**m.layers[i].out_shape.__dict__, **kw})


BROKEN = [
    # (description, mutation, C status, bad layer, Python exception)
    ("conv output size wrong", lambda m: (set_out(m, 0, h=5), setattr(m.layers[1], "in_shape", m.layers[0].out_shape)), ET_ERR_CORRUPT, 0, CorruptError),
    ("shapes do not chain", lambda m: setattr(m.layers[1], "in_shape", Shape(4, 4, 3, FMT_ACT)), ET_ERR_CORRUPT, 1, CorruptError),
    ("first input not the input format", lambda m: setattr(m.layers[0], "in_shape", Shape(6, 6, 1, FMT_ACT)), ET_ERR_CORRUPT, 0, CorruptError),
    ("head not last", lambda m: m.layers.append(copy.deepcopy(m.layers[-1])), ET_ERR_CORRUPT, 5, CorruptError),
    ("no head", lambda m: m.layers.pop(), ET_ERR_CORRUPT, 4, CorruptError),
    ("relu output in bias format", lambda m: setattr(m.layers[0], "activation", Activation.NONE), ET_ERR_CORRUPT, 0, CorruptError),
    ("alpha shift too large", lambda m: setattr(m.layers[4], "alpha_shift", 16), ET_ERR_CORRUPT, 4, CorruptError),
    ("dense on a 2-D tensor", lambda m: (m.layers.pop(3), setattr(m.layers[3], "in_shape", Shape(2, 2, 2, FMT_BN_OUT))), ET_ERR_CORRUPT, 3, CorruptError),
    ("pool of wrong size", lambda m: set_out(m, 1, w=1), ET_ERR_CORRUPT, 1, CorruptError),
    ("flatten size wrong", lambda m: set_out(m, 3, c=9), ET_ERR_CORRUPT, 3, CorruptError),
    ("unknown activation", lambda m: setattr(m.layers[0], "activation", 7), ET_ERR_UNSUPPORTED, 0, UnsupportedError),
    ("unknown padding", lambda m: setattr(m.layers[0], "padding", 5), ET_ERR_UNSUPPORTED, 0, UnsupportedError),
    ("unknown format", lambda m: setattr(m.layers[0], "in_shape", Shape(6, 6, 1, 42)), ET_ERR_UNSUPPORTED, 0, UnsupportedError),
    ("same padding with even kernel", lambda m: (setattr(m.layers[0], "padding", Padding.SAME), setattr(m.layers[0], "kernel", 2)), ET_ERR_CORRUPT, 0, CorruptError),
]


@pytest.mark.parametrize("what, fn, status, bad, exc", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_tables_are_rejected_alike(core, what, fn, status, bad, exc):
    model = mutate(fn)
    assert c_check(core, model) == (status, bad), what
    with pytest.raises(exc):
        check_model(model)


def test_unknown_kind(core):
    model = mutate(lambda m: setattr(m.layers[1], "kind", 99))
    assert c_check(core, model) == (ET_ERR_UNSUPPORTED, 1)
    with pytest.raises(UnsupportedError, match="unknown layer kind 99"):
        check_model(model)


def test_python_names_the_layer_and_the_fix():
    with pytest.raises(CorruptError, match=r"layer 3 \(dense\).*put a flatten layer before it"):
        check_model(mutate(lambda m: (m.layers.pop(3), setattr(m.layers[3], "in_shape", Shape(2, 2, 2, FMT_BN_OUT)), setattr(m.layers[3], "name", ""))))


def test_tensor_shape_mismatch_is_caught_in_python():
    with pytest.raises(CorruptError, match=r"weights must have shape \(3, 8\)"):
        check_model(mutate(lambda m: setattr(m.layers[4], "weights", np.zeros((3, 7), np.int8))))


@pytest.mark.parametrize(
    "what, change",
    [
        ("weights beyond the image", lambda offs, n: offs.__setitem__(0, TensorOffsets(n - 4, offs[0].bias, offs[0].bn))),
        ("misaligned bias", lambda offs, n: offs.__setitem__(0, TensorOffsets(offs[0].weight, offs[0].bias + 1, offs[0].bn))),
        ("missing bias", lambda offs, n: offs.__setitem__(4, TensorOffsets(offs[4].weight, 0xFFFFFFFF, offs[4].bn))),
        ("tensor where none belongs", lambda offs, n: offs.__setitem__(1, TensorOffsets(0, 0xFFFFFFFF, 0xFFFFFFFF))),
    ],
)
def test_image_level_errors(core, what, change):
    model = tiny_model()
    data, offsets = layout(model)
    change(offsets, len(data))
    status, _ = c_check(core, model, offsets=offsets)
    assert status == ET_ERR_CORRUPT, what


def test_overlapping_tensors(core):
    model = tiny_model()
    _, offsets = layout(model)
    offsets[4] = TensorOffsets(offsets[0].weight, offsets[4].bias, offsets[4].bn)  # fc weights over conv weights
    assert c_check(core, model, offsets=offsets) == (ET_ERR_CORRUPT, len(model.layers))


def test_null_and_layer_count(core):
    ffi, lib = core
    assert lib.et_model_check(ffi.NULL, ffi.NULL) == ET_ERR_ARG
    cm = CModel(ffi, tiny_model())
    cm.c.n_layers = 0
    assert lib.et_model_check(cm.c, ffi.NULL) == ET_ERR_CORRUPT
    cm.c.n_layers = 33
    assert lib.et_model_check(cm.c, ffi.NULL) == ET_ERR_CORRUPT


def test_layout_aligns_every_tensor():
    model = tiny_model()
    for align in (2, 4, 64):
        data, offsets = layout(model, align=align)
        assert len(data) % align == 0
        for layer, off in zip(model.layers, offsets):
            for tensor, at in ((layer.weights, off.weight), (layer.bias, off.bias), (layer.bn, off.bn)):
                if tensor is None:
                    assert at == 0xFFFFFFFF
                else:
                    assert at % align == 0
                    assert data[at : at + tensor.nbytes] == tensor.astype(tensor.dtype.newbyteorder("<")).tobytes()
