"""Model presets: the shapes and counts the spec states, the layer scale alpha, and a
deterministic, portable, uniform initialisation."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from edgetrain import ArgumentError
from edgetrain.backends import CModel
from edgetrain.model.description import LayerKind
from edgetrain.model.presets import PRESETS, alpha_shift_for, hash_u64, preset, uniform_int8
from edgetrain.model.validate import check_model


def test_paper_cnn_is_spec_6_1():
    m = preset("paper-cnn")
    assert m.n_weights() == 1_497_216  # 1,152 + 3 x 147,456 + 1,048,576 + 5,120
    assert sum(l.bias.size for l in m.trainable_layers()) == 1_034
    convs = [l for l in m.layers if l.kind == LayerKind.CONV2D]
    assert [(l.out_shape.h, l.out_shape.c) for l in convs] == [(26, 128), (24, 128), (10, 128), (8, 128)]
    assert [l.kind for l in m.layers].count(LayerKind.BATCHNORM) == 2
    assert [l.out_shape.c for l in m.layers if l.kind == LayerKind.DENSE] == [512, 10]
    # alpha: conv1 0.5, conv2-4 1/16, fc1 1/32, fc2 1/16 (spec §4)
    assert [2.0 ** -l.alpha_shift for l in m.trainable_layers()] == [0.5, 1 / 16, 1 / 16, 1 / 16, 1 / 32, 1 / 16]


def test_mcu_cnn_and_mlp():
    m = preset("mcu-cnn")
    assert m.n_weights() == 72 + 1152 + 25600 + 640 == 27_464
    assert [l.kind for l in m.layers] == [LayerKind.CONV2D, LayerKind.MAXPOOL2, LayerKind.CONV2D, LayerKind.MAXPOOL2,
                                          LayerKind.BATCHNORM, LayerKind.FLATTEN, LayerKind.DENSE, LayerKind.DENSE, LayerKind.SOFTMAX_CE]
    mlp = preset("mlp")
    assert [(l.in_shape.c, l.out_shape.c) for l in mlp.trainable_layers()] == [(784, 64), (64, 10)]
    assert mlp.n_weights() == 50_816


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_pass_both_model_checks(core, name):
    ffi, lib = core
    m = preset(name, 3)
    check_model(m)
    assert lib.et_model_check(CModel(m).c, ffi.NULL) == 0


@pytest.mark.parametrize("fan_in", [1, 2, 3, 5, 6, 7, 9, 24, 25, 72, 96, 97, 400, 512, 784, 1152, 2048, 6144, 6145])
@pytest.mark.parametrize("gain", [1, 2])
def test_alpha_shift_is_floor_log2_sqrt(fan_in, gain):
    """2^-s <= sqrt(3 g / fan_in) < 2^(1-s), checked on exact rationals (s >= 0)."""
    s = alpha_shift_for(fan_in, gain)
    ratio = Fraction(3 * gain, fan_in)
    if ratio >= 1:
        assert s == 0
    else:
        assert Fraction(1, 4**s) <= ratio < Fraction(4, 4**s)
        assert s == -math.floor(math.log2(math.sqrt(3 * gain / fan_in)) + 1e-12)


def _fmix_python(seed: int, stream: int, i: int) -> int:
    """The counter hash on Python ints (an independent formulation of hash_u64)."""
    m = (1 << 64) - 1
    x = (i * 0xD6E8FEB86659FD93 + (seed * 0x9E3779B97F4A7C15 + stream * 0xC2B2AE3D27D4EB4F + 0x165667B19E3779F9)) & m
    for mult in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        x ^= x >> 33
        x = (x * mult) & m
    return x ^ (x >> 33)


def test_hash_is_the_same_on_python_ints():
    for seed, stream in ((0, 1), (12345, 7), (2**32 - 1, 0xDA7A)):
        got = hash_u64(seed, stream, 50).tolist()
        assert got == [_fmix_python(seed, stream, i) for i in range(50)]


def test_init_is_deterministic_uniform_and_seed_dependent():
    a, b, c = preset("mcu-cnn", 5), preset("mcu-cnn", 5), preset("mcu-cnn", 6)
    for la, lb, lc in zip(a.trainable_layers(), b.trainable_layers(), c.trainable_layers()):
        assert np.array_equal(la.weights, lb.weights)
        assert not np.array_equal(la.weights, lc.weights)
        assert (la.bias == 0).all()
    w = uniform_int8(9, 1, (200_000,)).astype(np.int64)
    counts = np.bincount(w + 128, minlength=256)
    assert counts.min() > 0
    chi2 = ((counts - 200_000 / 256) ** 2 / (200_000 / 256)).sum()
    assert chi2 < 350  # 255 degrees of freedom: mean 255, sd 22.6
    assert abs(w.mean() + 0.5) < 0.5
    # tensors of one model use different streams
    fc1, fc2 = a.trainable_layers()[2:]
    assert not np.array_equal(fc1.weights.reshape(-1)[:640], fc2.weights.reshape(-1))


def test_bn_starts_fresh():
    bn = next(l for l in preset("mcu-cnn").layers if l.kind == LayerKind.BATCHNORM)
    assert (bn.bn[0] == 4096).all() and (bn.bn[1:] == 0).all()


def test_unknown_preset_and_bad_seed():
    with pytest.raises(ArgumentError, match="unknown model preset 'vgg'"):
        preset("vgg")
    with pytest.raises(ArgumentError, match="seed"):
        preset("mlp", -1)
