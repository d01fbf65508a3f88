"""csrc/src/layers.c against edgetrain/reference/layers.py: every layer, forward and
backward, random shapes and values plus edge fills, compared with ``==``.

Where the spec (docs/layers.md) gives a closed form that is cheap to write
out directly (the rounding rule, tie rules, masks, the exp2 table), a third
oracle written from the page checks the C as well.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrain import ArgumentError, CorruptError
from edgetrain.model.description import Activation, Layer, LayerKind, Padding, Shape
from edgetrain.reference import layers as ref
from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS, FMT_BN_OUT, FMT_INPUT
from layer_cases import (bn_layers, buf, c_layer, conv_layers, dense_layers, head_layer, modes, out_array, pool_layers,
                         random_int, random_tensor)

ET_OK, ET_ERR_ARG = 0, -1
seeds = st.integers(0, 2**32 - 1)


def rq(x: int, shift: int, lo: int, hi: int) -> int:
    """The rounding rule from the spec on Python ints: x * 2^-shift, half away from zero, clamped."""
    if shift <= 0:
        v = x << -shift
    else:
        mag = (abs(x) + (1 << (shift - 1))) >> shift
        v = mag if x >= 0 else -mag
    return max(lo, min(hi, v))


def lsb(fmt):
    return {FMT_INPUT: -8, FMT_ACT: -7}.get(fmt, -6)


# ---- ReLU ------------------------------------------------------------------------------


@given(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=200))
def test_relu_forward(core, twin, zs):
    ffi, lib = core
    z = np.array(zs, dtype=np.int16)
    a = np.zeros(len(zs), np.uint8)
    assert lib.et_relu_forward(buf(ffi, z), buf(ffi, a), len(zs)) == ET_OK
    twin.equal(a.tolist(), ref.relu_forward(z).tolist())
    assert a.tolist() == [rq(v, 5, 0, 255) for v in zs]


def test_relu_forward_edges(core):
    ffi, lib = core
    z = np.array([-32768, -1, 0, 15, 16, 31, 32, 8143, 8144, 8160, 32767], np.int16)  # 16/32 = 0.5 LSB ties
    a = np.zeros(z.size, np.uint8)
    lib.et_relu_forward(buf(ffi, z), buf(ffi, a), z.size)
    assert a.tolist() == [0, 0, 0, 0, 1, 1, 1, 254, 255, 255, 255]


@given(seeds, st.integers(1, 300))
def test_relu_backward(core, twin, seed, n):
    ffi, lib = core
    rng = np.random.default_rng(seed)
    a = rng.choice(np.array([0, 1, 128, 254, 255], np.uint8), n)
    da = rng.integers(-128, 128, n).astype(np.int8)
    dz = np.zeros(n, np.int8)
    assert lib.et_relu_backward(buf(ffi, a), buf(ffi, da), buf(ffi, dz), n) == ET_OK
    twin.equal(dz.tolist(), ref.relu_backward(a, da).tolist())
    assert np.array_equal(dz, np.where((a > 0) & (a < 255), da, 0))
    # In place (dz == da) gives the same.
    lib.et_relu_backward(buf(ffi, a), buf(ffi, da), buf(ffi, da), n)
    assert np.array_equal(da, dz)


# ---- Conv2D ----------------------------------------------------------------------------


def conv_tensors(layer, seed, mode):
    rng = np.random.default_rng(seed)
    w = random_int(rng, np.int8, (layer.out_shape.c, layer.kernel, layer.kernel, layer.in_shape.c), mode)
    b = random_int(rng, np.int16, layer.out_shape.c, "random" if mode == "small" else mode)
    x = random_tensor(rng, layer.in_shape, "random" if mode == "small" else mode)
    return w, b, x


@given(conv_layers(), seeds, modes)
def test_conv2d_forward(core, twin, layer, seed, mode):
    ffi, lib = core
    w, b, x = conv_tensors(layer, seed, mode)
    out = out_array(layer.out_shape)
    assert lib.et_conv2d_forward(c_layer(ffi, layer), buf(ffi, w), buf(ffi, b), buf(ffi, x), buf(ffi, out)) == ET_OK
    twin.equal(out.tolist(), ref.conv2d_forward(layer, w, b, x).tolist(), "conv2d_forward")


def spec_conv_forward(layer, w, b, x):
    """docs/layers.md, written out with loops on Python ints."""
    k, i, o = layer.kernel, layer.in_shape, layer.out_shape
    pad = (k - 1) // 2 if layer.padding == Padding.SAME else 0
    shift = layer.alpha_shift - 5 - lsb(i.fmt)
    out = []
    for oy in range(o.h):
        for ox in range(o.w):
            for oc in range(o.c):
                acc = 0
                for ky in range(k):
                    for kx in range(k):
                        iy, ix = oy + ky - pad, ox + kx - pad
                        if 0 <= iy < i.h and 0 <= ix < i.w:
                            acc += sum(int(w[oc, ky, kx, c]) * int(x[iy, ix, c]) for c in range(i.c))
                z = max(-32768, min(32767, rq(acc, shift, -32768, 32767) + int(b[oc])))
                out.append(rq(z, 5, 0, 255) if layer.activation == Activation.RELU else z)
    return out


@settings(max_examples=60)
@given(conv_layers(), seeds, modes)
def test_conv2d_forward_matches_the_spec(core, layer, seed, mode):
    ffi, lib = core
    w, b, x = conv_tensors(layer, seed, mode)
    out = out_array(layer.out_shape)
    lib.et_conv2d_forward(c_layer(ffi, layer), buf(ffi, w), buf(ffi, b), buf(ffi, x), buf(ffi, out))
    assert out.reshape(-1).tolist() == spec_conv_forward(layer, w, b, x)


@given(conv_layers(), seeds, modes)
def test_conv2d_backward_input(core, twin, layer, seed, mode):
    ffi, lib = core
    rng = np.random.default_rng(seed)
    w, _, _ = conv_tensors(layer, seed, mode)
    dz = random_int(rng, np.int8, (layer.out_shape.h, layer.out_shape.w, layer.out_shape.c), mode)
    dx = np.zeros((layer.in_shape.h, layer.in_shape.w, layer.in_shape.c), np.int8)
    assert lib.et_conv2d_backward_input(c_layer(ffi, layer), buf(ffi, w), buf(ffi, dz), buf(ffi, dx)) == ET_OK
    twin.equal(dx.tolist(), ref.conv2d_backward_input(layer, w, dz).tolist(), "conv2d_backward_input")


@settings(max_examples=60)
@given(conv_layers(), seeds)
def test_conv2d_backward_input_is_the_adjoint(core, layer, seed):
    """Unrounded: sum(dx_exact * x) == sum(dz * conv_acc(x)) for any x, i.e. W^T is the transpose."""
    ffi, lib = core
    rng = np.random.default_rng(seed)
    w, _, _ = conv_tensors(layer, seed, "random")
    k = layer.kernel
    dz = rng.integers(-2, 3, (layer.out_shape.h, layer.out_shape.w, layer.out_shape.c)).astype(np.int8)
    x = rng.integers(-3, 4, (layer.in_shape.h, layer.in_shape.w, layer.in_shape.c)).astype(np.int64)
    cols = ref.im2col(layer, x)  # exact integer im2col
    lhs = int((dz.reshape(-1, layer.out_shape.c).astype(np.int64) * (cols @ w.reshape(w.shape[0], -1).T.astype(np.int64))).sum())
    # dx before rounding: dz W scattered onto each pixel's receptive field
    pad = (k - 1) // 2 if layer.padding == Padding.SAME else 0
    acc = np.zeros((layer.in_shape.h + 2 * pad, layer.in_shape.w + 2 * pad, layer.in_shape.c), np.int64)
    colsd = (dz.reshape(-1, layer.out_shape.c).astype(np.int64) @ w.reshape(w.shape[0], -1).astype(np.int64)).reshape(layer.out_shape.h, layer.out_shape.w, k, k, -1)
    for ky in range(k):
        for kx in range(k):
            acc[ky : ky + layer.out_shape.h, kx : kx + layer.out_shape.w] += colsd[:, :, ky, kx]
    dx_exact = acc[pad : pad + layer.in_shape.h, pad : pad + layer.in_shape.w]
    assert int((dx_exact * x).sum()) == lhs
    # and the C result is that exact value rounded by the rule
    dx = np.zeros(dx_exact.shape, np.int8)
    lib.et_conv2d_backward_input(c_layer(ffi, layer), buf(ffi, w), buf(ffi, dz), buf(ffi, dx))
    assert dx.reshape(-1).tolist() == [rq(int(v), 7 + layer.alpha_shift, -128, 127) for v in dx_exact.reshape(-1)]


@given(conv_layers(), seeds, modes)
def test_conv2d_backward_input_s16(core, twin, layer, seed, mode):
    ffi, lib = core
    rng = np.random.default_rng(seed)
    w, _, _ = conv_tensors(layer, seed, mode)
    dz = random_int(rng, np.int8, (layer.out_shape.h, layer.out_shape.w, layer.out_shape.c), mode)
    dx = np.zeros((layer.in_shape.h, layer.in_shape.w, layer.in_shape.c), np.int16)
    dx8 = np.zeros(dx.shape, np.int8)
    cl = c_layer(ffi, layer)
    assert lib.et_conv2d_backward_input_s16(cl, buf(ffi, w), buf(ffi, dz), buf(ffi, dx)) == ET_OK
    twin.equal(dx.tolist(), ref.conv2d_backward_input_s16(layer, w, dz).tolist(), "conv2d_backward_input_s16")
    # Same sum as the int8 path, 8 more bits: rounding the wide value by 8 gives the int8 one
    # except where the double rounding of an exact tie or the int16 saturation differs.
    lib.et_conv2d_backward_input(cl, buf(ffi, w), buf(ffi, dz), buf(ffi, dx8))
    inside = (np.abs(dx.astype(int)) < 2**15 - 1) & (np.abs(dx8.astype(int)) < 127)
    assert np.abs(dx.astype(int)[inside] / 256 - dx8.astype(int)[inside]).max(initial=0) <= 0.5 + 1 / 256


@given(conv_layers(), seeds, modes)
def test_conv2d_weight_and_bias_grad(core, twin, layer, seed, mode):
    ffi, lib = core
    rng = np.random.default_rng(seed)
    _, _, x = conv_tensors(layer, seed, mode)
    dz = random_int(rng, np.int8, (layer.out_shape.h, layer.out_shape.w, layer.out_shape.c), mode)
    m = layer.kernel * layer.kernel * layer.in_shape.c
    dw = np.full((layer.out_shape.c, m), 77, np.int32)  # overwritten entirely
    db = np.full(layer.out_shape.c, 77, np.int32)
    cl = c_layer(ffi, layer)
    assert lib.et_conv2d_weight_grad(cl, buf(ffi, x), buf(ffi, dz), buf(ffi, dw)) == ET_OK
    assert lib.et_conv2d_bias_grad(cl, buf(ffi, dz), buf(ffi, db)) == ET_OK
    twin.equal(dw.tolist(), ref.conv2d_weight_grad(layer, x, dz).tolist(), "conv2d_weight_grad")
    twin.equal(db.tolist(), ref.conv2d_bias_grad(layer, dz).tolist(), "conv2d_bias_grad")
    # The sum of the im2col rank-1 terms, row by row from the C im2col.
    row = np.zeros(m, np.int16)
    total = np.zeros((layer.out_shape.c, m), np.int64)
    d2 = dz.reshape(-1, layer.out_shape.c).astype(np.int64)
    for t in range(d2.shape[0]):
        assert lib.et_conv2d_im2col_row(cl, buf(ffi, x), t, buf(ffi, row)) == ET_OK
        twin.equal(row.tolist(), ref.conv2d_im2col_row(layer, x, t).tolist(), "im2col row")
        total += np.outer(d2[t], row.astype(np.int64))
    assert np.array_equal(total, dw)
    assert np.array_equal(d2.sum(axis=0), db)


def test_conv2d_im2col_row_same_padding_and_order(core):
    ffi, lib = core
    layer = Layer(LayerKind.CONV2D, Shape(3, 3, 2, FMT_ACT), Shape(3, 3, 1, FMT_ACT), "c", Activation.RELU, Padding.SAME, 3, 0)
    x = np.arange(18, dtype=np.uint8).reshape(3, 3, 2)
    row = np.zeros(18, np.int16)
    lib.et_conv2d_im2col_row(c_layer(ffi, layer), buf(ffi, x), 0, buf(ffi, row))  # top-left pixel
    # [ky][kx][c]: only ky, kx in {1, 2} are inside; pixel (0,0) holds channels 0, 1.
    want = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 6, 7, 8, 9]
    assert row.tolist() == want
    assert lib.et_conv2d_im2col_row(c_layer(ffi, layer), buf(ffi, x), 9, buf(ffi, row)) == ET_ERR_ARG


def test_conv2d_accumulator_extremes_do_not_overflow(core, twin):
    """Largest fan-in product magnitudes: -128 weights x 255 inputs, 5x5x64 taps."""
    ffi, lib = core
    layer = Layer(LayerKind.CONV2D, Shape(5, 5, 64, FMT_ACT), Shape(1, 1, 2, FMT_BIAS), "c", Activation.NONE, Padding.VALID, 5, 0)
    w = np.full((2, 5, 5, 64), -128, np.int8)
    b = np.array([32767, -32768], np.int16)
    x = np.full((5, 5, 64), 255, np.uint8)
    out = np.zeros((1, 1, 2), np.int16)
    lib.et_conv2d_forward(c_layer(ffi, layer), buf(ffi, w), buf(ffi, b), buf(ffi, x), buf(ffi, out))
    twin.equal(out.tolist(), ref.conv2d_forward(layer, w, b, x).tolist())
    assert out.reshape(-1).tolist() == [-32768 + 32767, -32768]  # t saturates at -32768 before the bias


# ---- Dense -----------------------------------------------------------------------------


@given(dense_layers(), seeds, modes)
def test_dense_forward_and_backward(core, twin, layer, seed, mode):
    ffi, lib = core
    rng = np.random.default_rng(seed)
    n, m = layer.out_shape.c, layer.in_shape.c
    w = random_int(rng, np.int8, (n, m), mode)
    b = random_int(rng, np.int16, n, mode if mode != "small" else "random")
    x = random_tensor(rng, layer.in_shape, mode if mode != "small" else "random")
    dz = random_int(rng, np.int8, (1, 1, n), mode)
    out = out_array(layer.out_shape)
    dx = np.zeros((1, 1, m), np.int8)
    dx16 = np.zeros((1, 1, m), np.int16)
    cl = c_layer(ffi, layer)
    assert lib.et_dense_forward(cl, buf(ffi, w), buf(ffi, b), buf(ffi, x), buf(ffi, out)) == ET_OK
    assert lib.et_dense_backward_input(cl, buf(ffi, w), buf(ffi, dz), buf(ffi, dx)) == ET_OK
    assert lib.et_dense_backward_input_s16(cl, buf(ffi, w), buf(ffi, dz), buf(ffi, dx16)) == ET_OK
    twin.equal(out.tolist(), ref.dense_forward(layer, w, b, x).tolist(), "dense_forward")
    twin.equal(dx.tolist(), ref.dense_backward_input(layer, w, dz).tolist(), "dense_backward_input")
    twin.equal(dx16.tolist(), ref.dense_backward_input_s16(layer, w, dz).tolist(), "dense_backward_input_s16")
    # Spec oracle for both.
    shift = layer.alpha_shift - 5 - lsb(layer.in_shape.fmt)
    acc = w.astype(np.int64) @ x.reshape(-1).astype(np.int64)
    z = [max(-32768, min(32767, rq(int(a), shift, -32768, 32767) + int(bb))) for a, bb in zip(acc, b)]
    want = [rq(v, 5, 0, 255) for v in z] if layer.activation == Activation.RELU else z
    assert out.reshape(-1).tolist() == want
    back = dz.reshape(-1).astype(np.int64) @ w.astype(np.int64)
    assert dx.reshape(-1).tolist() == [rq(int(v), 7 + layer.alpha_shift, -128, 127) for v in back]
    assert dx16.reshape(-1).tolist() == [rq(int(v), layer.alpha_shift - 1, -(2**15), 2**15 - 1) for v in back]


# ---- The requantize's 32-bit path and the windowed conv ---------------------------------
# (csrc/src/layers.c: et_rq_prepare / et_mac_store, et_window; the twin is one int64 formula)


@pytest.mark.parametrize("fmt", [FMT_INPUT, FMT_ACT, FMT_BN_OUT])
@pytest.mark.parametrize("relu", [True, False])
def test_requantize_every_small_accumulator_every_shift(core, twin, fmt, relu):
    """Every product w * x of one weight and one activation (all 256 x 256), at every alpha_shift
    0..15 (rescale shifts 1..18), biases that push past both int16 ends: C == twin == the spec."""
    ffi, lib = core
    act = Activation.RELU if relu else Activation.NONE
    w = np.arange(-128, 128, dtype=np.int8).reshape(256, 1)
    xs = np.arange(256, dtype=np.uint8) if fmt != FMT_BN_OUT else np.arange(-128, 128, dtype=np.int8)
    rng = np.random.default_rng(fmt * 2 + relu)
    for alpha in range(16):
        layer = Layer(LayerKind.DENSE, Shape(1, 1, 1, fmt), Shape(1, 1, 256, FMT_ACT if relu else FMT_BIAS), "d", act,
                      alpha_shift=alpha)
        cl = c_layer(ffi, layer)
        shift = alpha - 5 - lsb(fmt)
        b = rng.choice(np.array([-32768, -32767, -1, 0, 1, 32766, 32767, -20000, 20000], np.int16), 256)
        for xv in xs[:: 1 if alpha in (0, 1, 15) else 17]:
            x = np.array([xv], dtype=xs.dtype).reshape(1, 1, 1)
            out = out_array(layer.out_shape)
            assert lib.et_dense_forward(cl, buf(ffi, w), buf(ffi, b), buf(ffi, x), buf(ffi, out)) == ET_OK
            twin.equal(out.tolist(), ref.dense_forward(layer, w, b, x).tolist(), f"dense alpha {alpha} x {xv}")
            acc = w.reshape(-1).astype(np.int64) * int(xv)
            z = [max(-32768, min(32767, rq(int(a), shift, -32768, 32767) + int(bb))) for a, bb in zip(acc, b)]
            assert out.reshape(-1).tolist() == ([rq(v, 5, 0, 255) for v in z] if relu else z)


@pytest.mark.parametrize("wv,xv,fmt", [(-128, 255, FMT_INPUT), (127, 255, FMT_INPUT), (-128, -128, FMT_BN_OUT),
                                       (-128, 127, FMT_BN_OUT), (-1, 1, FMT_ACT)])
def test_requantize_at_the_largest_fan_in(core, twin, wv, xv, fmt):
    """fan-in 65535 (ET_MAX_FAN), the accumulator's extremes, alpha_shift 15 and 0: the bound the
    32-bit rounding path is proved under."""
    ffi, lib = core
    m = 65535
    x = np.full((1, 1, m), xv, np.uint8 if fmt != FMT_BN_OUT else np.int8)
    w = np.full((2, m), wv, np.int8)
    w[1, ::2] = 0
    b = np.array([0, -3], np.int16)
    for alpha in (0, 15):
        for act in (Activation.NONE, Activation.RELU):
            layer = Layer(LayerKind.DENSE, Shape(1, 1, m, fmt), Shape(1, 1, 2, FMT_ACT if act == Activation.RELU else FMT_BIAS),
                          "d", act, alpha_shift=alpha)
            out = out_array(layer.out_shape)
            assert lib.et_dense_forward(c_layer(ffi, layer), buf(ffi, w), buf(ffi, b), buf(ffi, x), buf(ffi, out)) == ET_OK
            twin.equal(out.tolist(), ref.dense_forward(layer, w, b, x).tolist(), f"fan 65535 alpha {alpha}")


@given(conv_layers(max_in_c=20, max_alpha=15), seeds, modes)
def test_conv2d_wide_and_thin_windows(core, twin, layer, seed, mode):
    """in_c 1..20 with k 1, 3, 5: windows of k*k*in_c from 1 to 500 bytes and input rows of w*in_c
    from 1 to 180 values, either side of the 128 the windowed kernels (forward, weight gradient) and
    the row-wise input gradient take; SAME rows out of bounds, every alpha_shift."""
    ffi, lib = core
    w, b, x = conv_tensors(layer, seed, mode)
    rng = np.random.default_rng(seed + 1)
    dz = random_int(rng, np.int8, (layer.out_shape.h, layer.out_shape.w, layer.out_shape.c), mode)
    m = layer.kernel * layer.kernel * layer.in_shape.c
    out = out_array(layer.out_shape)
    dw = np.zeros((layer.out_shape.c, m), np.int32)
    dx = np.zeros((layer.in_shape.h, layer.in_shape.w, layer.in_shape.c), np.int8)
    dx16 = np.zeros((layer.in_shape.h, layer.in_shape.w, layer.in_shape.c), np.int16)
    cl = c_layer(ffi, layer)
    assert lib.et_conv2d_forward(cl, buf(ffi, w), buf(ffi, b), buf(ffi, x), buf(ffi, out)) == ET_OK
    assert lib.et_conv2d_backward_input_s16(cl, buf(ffi, w), buf(ffi, dz), buf(ffi, dx16)) == ET_OK
    assert lib.et_conv2d_weight_grad(cl, buf(ffi, x), buf(ffi, dz), buf(ffi, dw)) == ET_OK
    assert lib.et_conv2d_backward_input(cl, buf(ffi, w), buf(ffi, dz), buf(ffi, dx)) == ET_OK
    twin.equal(out.tolist(), ref.conv2d_forward(layer, w, b, x).tolist(), "conv2d_forward")
    twin.equal(dw.tolist(), ref.conv2d_weight_grad(layer, x, dz).tolist(), "conv2d_weight_grad")
    twin.equal(dx.tolist(), ref.conv2d_backward_input(layer, w, dz).tolist(), "conv2d_backward_input")
    twin.equal(dx16.tolist(), ref.conv2d_backward_input_s16(layer, w, dz).tolist(), "conv2d_backward_input_s16")
    assert out.reshape(-1).tolist() == spec_conv_forward(layer, w, b, x)


# ---- The backward kernels' paired loops ------------------------------------------------
# (csrc/src/layers.c: et_axpy / et_axpy2, two rows whose scalars are both non-zero at a time, an odd
# one alone; the DSP build takes four bytes per step and the portable loop the tail)


def backward_dz(rng, shape, pattern):
    """Output gradients: every value non-zero, one in two or three (pairs and an odd one out), or one alone."""
    dz = rng.integers(-128, 128, size=shape).astype(np.int8)
    dz[dz == 0] = 1
    flat = dz.reshape(-1)
    if pattern == "half":
        flat[::2] = 0
    elif pattern == "third":
        flat[(np.arange(flat.size) % 3) != 1] = 0
    elif pattern == "one":
        keep = flat[flat.size // 2]
        flat[:] = 0
        flat[flat.size // 2] = keep
    return dz


BACKWARD_CONVS = [  # (h, w, in_c, out_c, k, padding): weight rows m = k*k*in_c and input rows w*in_c
    (6, 6, 1, 3, 1, Padding.VALID),   # m 1: windows, every run a tail; 36 pixels, more than one block
    (7, 7, 2, 4, 1, Padding.VALID),   # m 2, 49 pixels
    (5, 5, 3, 5, 1, Padding.SAME),    # m 3
    (6, 5, 1, 4, 3, Padding.VALID),   # m 9 (1 mod 4): conv1 of mcu-cnn's kind
    (5, 6, 2, 3, 3, Padding.SAME),    # m 18 (2 mod 4), SAME borders cut runs to 2 in_c
    (5, 5, 3, 6, 3, Padding.SAME),    # m 27 (3 mod 4)
    (6, 6, 4, 5, 3, Padding.VALID),   # m 36 (0 mod 4)
    (4, 4, 8, 4, 3, Padding.SAME),    # m 72, input rows of 32
    (5, 5, 15, 3, 3, Padding.VALID),  # m 135 (3 mod 4): the wide weight gradient, input rows of 75
    (5, 4, 16, 4, 3, Padding.SAME),   # m 144 (0 mod 4), SAME: wide, clipped windows alone
    (4, 5, 17, 3, 3, Padding.SAME),   # m 153 (1 mod 4)
    (3, 3, 66, 3, 1, Padding.VALID),  # m 66: windows; input rows of 198, the blocked input gradient (64 + 2)
    (4, 3, 65, 5, 3, Padding.SAME),   # m 585 (1 mod 4): wide and blocked, runs of 65 and 130
    (3, 4, 67, 2, 1, Padding.SAME),   # m 67 (3 mod 4), blocked 64 + 3
]


@pytest.mark.parametrize("geom", BACKWARD_CONVS, ids=lambda g: "x".join(str(v) for v in g[:5]) + "-" + g[5].name)
@pytest.mark.parametrize("fmt", [FMT_INPUT, FMT_BN_OUT], ids=["unsigned", "signed"])
@pytest.mark.parametrize("pattern", ["all", "half", "third", "one"])
def test_conv2d_backward_kernels_every_run_length(core, twin, geom, fmt, pattern):
    """Weight and input gradients of runs of every length mod 4 (windowed, wide and SAME-clipped weight
    gradients; row-wise and blocked input gradients), on unsigned and signed activations, with output
    gradients that leave pairs, an odd row and a lone row."""
    ffi, lib = core
    h, w_, in_c, out_c, k, padding = geom
    oh, ow = (h - k + 1, w_ - k + 1) if padding == Padding.VALID else (h, w_)
    layer = Layer(LayerKind.CONV2D, Shape(h, w_, in_c, fmt), Shape(oh, ow, out_c, FMT_ACT), "c", Activation.RELU,
                  padding, k, 3)
    rng = np.random.default_rng(h * 1000 + w_ * 100 + in_c)
    x = random_tensor(rng, layer.in_shape)
    wt = random_int(rng, np.int8, (out_c, k, k, in_c))
    dz = backward_dz(rng, (oh, ow, out_c), pattern)
    m = k * k * in_c
    dw = np.full((out_c, m), 77, np.int32)
    dx = np.zeros((h, w_, in_c), np.int8)
    dx16 = np.zeros((h, w_, in_c), np.int16)
    cl = c_layer(ffi, layer)
    assert lib.et_conv2d_weight_grad(cl, buf(ffi, x), buf(ffi, dz), buf(ffi, dw)) == ET_OK
    assert lib.et_conv2d_backward_input(cl, buf(ffi, wt), buf(ffi, dz), buf(ffi, dx)) == ET_OK
    assert lib.et_conv2d_backward_input_s16(cl, buf(ffi, wt), buf(ffi, dz), buf(ffi, dx16)) == ET_OK
    twin.equal(dw.tolist(), ref.conv2d_weight_grad(layer, x, dz).tolist(), "conv2d_weight_grad")
    twin.equal(dx.tolist(), ref.conv2d_backward_input(layer, wt, dz).tolist(), "conv2d_backward_input")
    twin.equal(dx16.tolist(), ref.conv2d_backward_input_s16(layer, wt, dz).tolist(), "conv2d_backward_input_s16")
    # and the exact integer sums (the im2col rank-1 terms), not only agreement with the twin
    cols = ref.im2col(layer, x)  # int64; x is int8 storage for the signed format
    assert np.array_equal(dz.reshape(-1, out_c).astype(np.int64).T @ cols, dw)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 6, 7, 8, 63, 64, 65, 66, 67, 130, 131])
@pytest.mark.parametrize("n", [1, 2, 3, 6])
@pytest.mark.parametrize("pattern", ["all", "half", "one"])
def test_dense_backward_input_every_run_length(core, twin, m, n, pattern):
    """Input gradients of runs of every length mod 4 and block tails (64 + 1 .. 64 + 3), with one, two,
    three and six rows of non-zero output gradients: pairs, an odd row, a lone row."""
    ffi, lib = core
    layer = Layer(LayerKind.DENSE, Shape(1, 1, m, FMT_ACT), Shape(1, 1, n, FMT_BIAS), "d", Activation.NONE, alpha_shift=2)
    rng = np.random.default_rng(m * 10 + n)
    w = random_int(rng, np.int8, (n, m))
    dz = backward_dz(rng, (1, 1, n), pattern)
    dx = np.zeros((1, 1, m), np.int8)
    dx16 = np.zeros((1, 1, m), np.int16)
    cl = c_layer(ffi, layer)
    assert lib.et_dense_backward_input(cl, buf(ffi, w), buf(ffi, dz), buf(ffi, dx)) == ET_OK
    assert lib.et_dense_backward_input_s16(cl, buf(ffi, w), buf(ffi, dz), buf(ffi, dx16)) == ET_OK
    twin.equal(dx.tolist(), ref.dense_backward_input(layer, w, dz).tolist(), "dense_backward_input")
    twin.equal(dx16.tolist(), ref.dense_backward_input_s16(layer, w, dz).tolist(), "dense_backward_input_s16")
    back = dz.reshape(-1).astype(np.int64) @ w.astype(np.int64)
    assert dx16.reshape(-1).tolist() == [rq(int(v), 1, -(2**15), 2**15 - 1) for v in back]


@pytest.mark.parametrize("alpha", range(16))
def test_input_gradient_rounding_every_alpha(core, twin, alpha):
    """The input gradient's 32-bit rescale (et_grad_store): accumulators of every product w * d of int8s
    and sums of up to twelve, ties of every shift and both clamps, every alpha_shift, int8 and int16."""
    ffi, lib = core
    w = np.repeat(np.arange(-128, 128, dtype=np.int16)[None, :], 12, axis=0)
    w = ((w + np.arange(12, dtype=np.int16)[:, None] * 37 + 128) % 256 - 128).astype(np.int8)
    layer = Layer(LayerKind.DENSE, Shape(1, 1, 256, FMT_ACT), Shape(1, 1, 12, FMT_BIAS), "d", Activation.NONE,
                  alpha_shift=alpha)
    cl = c_layer(ffi, layer)
    for dz_row in ([1] + [0] * 11, [-1] + [0] * 11, [127] + [0] * 11, [-128] + [0] * 11, [-128] * 12, [127] * 12,
                   [3, -5, 7, 0, 0, 1, -128, 127, 64, -64, 2, -2]):
        dz = np.array(dz_row, np.int8).reshape(1, 1, 12)
        dx = np.zeros((1, 1, 256), np.int8)
        dx16 = np.zeros((1, 1, 256), np.int16)
        assert lib.et_dense_backward_input(cl, buf(ffi, w), buf(ffi, dz), buf(ffi, dx)) == ET_OK
        assert lib.et_dense_backward_input_s16(cl, buf(ffi, w), buf(ffi, dz), buf(ffi, dx16)) == ET_OK
        twin.equal(dx.tolist(), ref.dense_backward_input(layer, w, dz).tolist(), "dense_backward_input")
        twin.equal(dx16.tolist(), ref.dense_backward_input_s16(layer, w, dz).tolist(), "dense_backward_input_s16")
        back = dz.reshape(-1).astype(np.int64) @ w.astype(np.int64)
        assert dx.reshape(-1).tolist() == [rq(int(v), 7 + alpha, -128, 127) for v in back]
        assert dx16.reshape(-1).tolist() == [rq(int(v), alpha - 1, -(2**15), 2**15 - 1) for v in back]


@given(dense_layers(max_m=300, max_alpha=15), seeds, modes)
def test_dense_forward_every_alpha(core, twin, layer, seed, mode):
    ffi, lib = core
    rng = np.random.default_rng(seed)
    n, m = layer.out_shape.c, layer.in_shape.c
    w = random_int(rng, np.int8, (n, m), mode)
    b = random_int(rng, np.int16, n, mode if mode != "small" else "random")
    x = random_tensor(rng, layer.in_shape, mode if mode != "small" else "random")
    out = out_array(layer.out_shape)
    assert lib.et_dense_forward(c_layer(ffi, layer), buf(ffi, w), buf(ffi, b), buf(ffi, x), buf(ffi, out)) == ET_OK
    twin.equal(out.tolist(), ref.dense_forward(layer, w, b, x).tolist(), "dense_forward")


# ---- MaxPool ---------------------------------------------------------------------------


@given(pool_layers(), seeds, st.sampled_from(["random", "ties", "zeros"]))
def test_maxpool2(core, twin, layer, seed, mode):
    ffi, lib = core
    rng = np.random.default_rng(seed)
    shape = (layer.in_shape.h, layer.in_shape.w, layer.in_shape.c)
    x = {"random": rng.integers(0, 256, shape), "ties": rng.integers(0, 3, shape), "zeros": np.zeros(shape)}[mode].astype(np.uint8)
    out = out_array(layer.out_shape)
    dout = rng.integers(-128, 128, out.shape).astype(np.int8)
    din = np.full(shape, 99, np.int8)
    cl = c_layer(ffi, layer)
    assert lib.et_maxpool2_forward(cl, buf(ffi, x), buf(ffi, out)) == ET_OK
    assert lib.et_maxpool2_backward(cl, buf(ffi, x), buf(ffi, dout), buf(ffi, din)) == ET_OK
    twin.equal(out.tolist(), ref.maxpool2_forward(layer, x).tolist(), "maxpool2_forward")
    twin.equal(din.tolist(), ref.maxpool2_backward(layer, x, dout).tolist(), "maxpool2_backward")
    # Spec: the first maximum in the order (0,0), (0,1), (1,0), (1,1) gets the gradient.
    want = np.zeros(shape, np.int8)
    for y in range(out.shape[0]):
        for xx in range(out.shape[1]):
            for c in range(out.shape[2]):
                cands = [(2 * y + dy, 2 * xx + dx) for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1))]
                vals = [int(x[p][c]) for p in cands]
                first = cands[vals.index(max(vals))]
                assert out[y, xx, c] == max(vals)
                want[first[0], first[1], c] = dout[y, xx, c]
    assert np.array_equal(din, want)


# ---- Flatten ----------------------------------------------------------------------------


def test_flatten_moves_bytes(core, twin):
    ffi, lib = core
    layer = Layer(LayerKind.FLATTEN, Shape(2, 3, 2, FMT_BIAS), Shape(1, 1, 12, FMT_BIAS), "f")
    x = np.arange(-6, 6, dtype=np.int16).reshape(2, 3, 2)
    out = np.zeros((1, 1, 12), np.int16)
    assert lib.et_flatten_forward(c_layer(ffi, layer), buf(ffi, x), buf(ffi, out)) == ET_OK
    twin.equal(out.tolist(), ref.flatten_forward(layer, x).tolist())
    g = np.arange(12, dtype=np.int8).reshape(1, 1, 12)
    gi = np.zeros((2, 3, 2), np.int8)
    assert lib.et_flatten_backward(c_layer(ffi, layer), buf(ffi, g), buf(ffi, gi)) == ET_OK
    twin.equal(gi.tolist(), ref.flatten_backward(layer, g).tolist())
    assert lib.et_flatten_forward(c_layer(ffi, layer), buf(ffi, x), buf(ffi, x)) == ET_OK  # in place


# ---- Streaming batch norm -------------------------------------------------------------


def bn_params(rng, c, mode):
    p = np.empty((4, c), np.int16)
    p[0] = rng.integers(-(2**15), 2**15, c) if mode == "random" else rng.integers(2000, 6000, c)
    p[1] = rng.integers(-(2**15), 2**15, c) if mode == "random" else rng.integers(-2000, 2000, c)
    p[2] = rng.integers(-(2**15), 2**15, c) if mode == "random" else rng.integers(0, 8000, c)
    p[3] = rng.integers(-(2**15), 2**15, c) if mode == "random" else rng.integers(0, 3000, c)
    return p


decays = st.one_of(st.sampled_from([0, 1, 2**30, 2**30 - 1, 966367642]), st.integers(0, 2**30))


@given(bn_layers(), seeds, st.sampled_from(["random", "typical"]), st.sampled_from(["random", "max", "min", "sparse"]), decays)
def test_batchnorm_stats_prepare_forward_backward(core, twin, layer, seed, pmode, xmode, decay):
    ffi, lib = core
    rng = np.random.default_rng(seed)
    c = layer.in_shape.c
    x = random_tensor(rng, layer.in_shape, xmode)
    params = bn_params(rng, c, pmode)
    cl = c_layer(ffi, layer)
    # statistics update
    p_c = params.copy()
    d_c = ffi.new("uint32_t *", decay)
    assert lib.et_batchnorm_update_stats(cl, buf(ffi, x), buf(ffi, p_c), d_c) == ET_OK
    p_t, d_t = ref.batchnorm_update_stats(layer, x, params, decay)
    twin.equal((p_c.tolist(), d_c[0]), (p_t.tolist(), d_t), "batchnorm_update_stats")
    # corrected statistics and per-channel constants
    stats = np.zeros((2, c), np.int16)
    assert lib.et_batchnorm_corrected_stats(cl, buf(ffi, p_c), d_c[0], buf(ffi, stats)) == ET_OK
    twin.equal(stats.tolist(), ref.batchnorm_corrected_stats(layer, p_t, d_t).tolist(), "corrected stats")
    mh, inv = np.zeros(c, np.int32), np.zeros(c, np.int32)
    assert lib.et_batchnorm_prepare(cl, buf(ffi, p_c), d_c[0], buf(ffi, mh), buf(ffi, inv)) == ET_OK
    mh_t, inv_t = ref.batchnorm_prepare(layer, p_t, d_t)
    twin.equal((mh.tolist(), inv.tolist()), (mh_t.tolist(), inv_t.tolist()), "batchnorm_prepare")
    assert (inv > 0).all()
    # forward
    y = out_array(layer.out_shape)
    assert lib.et_batchnorm_forward(cl, buf(ffi, x), buf(ffi, p_c), buf(ffi, mh), buf(ffi, inv), buf(ffi, y)) == ET_OK
    twin.equal(y.tolist(), ref.batchnorm_forward(layer, x, p_t, mh_t, inv_t).tolist(), "batchnorm_forward")
    # backward (the wide int16 gradient at the output)
    dy = rng.integers(-(2**15), 2**15, y.shape).astype(np.int16)
    dx = np.zeros(x.shape, np.int8)
    dg, dbt = np.zeros(c, np.int64), np.zeros(c, np.int64)
    assert lib.et_batchnorm_backward(cl, buf(ffi, x), buf(ffi, y), buf(ffi, p_c), buf(ffi, mh), buf(ffi, inv), buf(ffi, dy),
                                     buf(ffi, dx), buf(ffi, dg), buf(ffi, dbt)) == ET_OK
    dx_t, dg_t, dbt_t = ref.batchnorm_backward(layer, x, y, p_t, mh_t, inv_t, dy)
    twin.equal((dx.tolist(), dg.tolist(), dbt.tolist()), (dx_t.tolist(), dg_t.tolist(), dbt_t.tolist()), "batchnorm_backward")
    # the straight-through mask: no gradient where the output saturated
    sat = (y == -128) | (y == 127)
    assert (dx[sat] == 0).all()
    # din may be NULL
    assert lib.et_batchnorm_backward(cl, buf(ffi, x), buf(ffi, y), buf(ffi, p_c), buf(ffi, mh), buf(ffi, inv), buf(ffi, dy),
                                     ffi.NULL, buf(ffi, dg), buf(ffi, dbt)) == ET_OK


def test_batchnorm_normalises_like_the_float_formula(core):
    """Warm statistics equal to the data's: outputs are gamma * (x - mean) / std + beta to within quantization."""
    ffi, lib = core
    rng = np.random.default_rng(5)
    layer = Layer(LayerKind.BATCHNORM, Shape(6, 6, 3, FMT_ACT), Shape(6, 6, 3, 5), "bn")
    x = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    xr = x.astype(float) / 128
    mean, msq = xr.mean(axis=(0, 1)), (xr * xr).mean(axis=(0, 1))
    p = np.zeros((4, 3), np.int16)
    p[0], p[1] = 4096, 512  # gamma 1, beta 0.125
    p[2], p[3] = np.round(mean * 4096), np.round(msq * 512)
    mh, inv = np.zeros(3, np.int32), np.zeros(3, np.int32)
    cl = c_layer(ffi, layer)
    lib.et_batchnorm_prepare(cl, buf(ffi, p), 0, buf(ffi, mh), buf(ffi, inv))  # decay 0: stats as they are
    y = np.zeros((6, 6, 3), np.int8)
    lib.et_batchnorm_forward(cl, buf(ffi, x), buf(ffi, p), buf(ffi, mh), buf(ffi, inv), buf(ffi, y))
    want = np.clip((xr - mean) / np.sqrt(msq - mean**2) + 0.125, -2, 2 - 2**-6)
    assert np.abs(y / 64 - want).max() < 0.03  # 2^-6 output step plus 2^-9 statistics step


def test_batchnorm_update_stats_is_the_ema(core):
    ffi, lib = core
    layer = Layer(LayerKind.BATCHNORM, Shape(2, 2, 1, FMT_ACT), Shape(2, 2, 1, 5), "bn")
    x = np.array([10, 20, 30, 40], np.uint8).reshape(2, 2, 1)  # mean 25/128, mean square 750/16384
    p = np.array([[4096], [0], [1000], [100]], np.int16)
    d = ffi.new("uint32_t *", 2**30)
    lib.et_batchnorm_update_stats(c_layer(ffi, layer), buf(ffi, x), buf(ffi, p), d)
    mean_new = round(25 * 32)  # 800 at 2^-12
    msq_new = round(3000 / (32 * 4))  # sum x^2 = 3000 -> 23.4 -> 23 at 2^-9
    assert p[2, 0] == math.floor((9 * 1000 + mean_new) / 10 + 0.5)
    assert p[3, 0] == math.floor((9 * 100 + msq_new) / 10 + 0.5)
    assert d[0] == math.floor(9 * 2**30 / 10 + 0.5)


# ---- Softmax cross-entropy ------------------------------------------------------------


def test_exp2_table_is_exactly_rounded():
    """T[j] = round(2^16 * 2^(j/32)), checked with integers: (2T-1)^32 <= 2^(544+j) < (2T+1)^32."""
    for j, t in enumerate(ref.EXP2_TABLE.tolist()):
        assert (2 * t - 1) ** 32 <= 2 ** (544 + j) < (2 * t + 1) ** 32, j


@given(st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-100000, 100), st.sampled_from([0, 1, -1, -4096, -4095, -128, -127, -(2**31)])))
def test_softmax_exp2_q16(core, twin, u):
    _, lib = core
    c = lib.et_softmax_exp2_q16(u)
    twin.equal(c, ref.softmax_exp2_q16(u))
    exact = 2.0 ** (16 + min(u, 0) / 4096)
    # interpolation and table rounding below 1e-4 relative, then one final rounding of 1/2
    assert abs(c - exact) <= 1e-4 * exact + 0.5


@given(st.integers(2, 40), seeds, st.sampled_from(["random", "close", "extreme", "equal"]), st.data())
def test_softmax_ce(core, twin, n, seed, mode, data):
    ffi, lib = core
    rng = np.random.default_rng(seed)
    z = {"random": rng.integers(-(2**15), 2**15, n), "close": rng.integers(-3000, 3000, n),
         "extreme": rng.choice([-(2**15), 2**15 - 1], n), "equal": np.full(n, 1234)}[mode].astype(np.int16)
    label = data.draw(st.integers(0, n - 1))
    layer = head_layer(n)
    cl = c_layer(ffi, layer)
    pred = ffi.new("uint16_t *")
    g = np.zeros(n, np.int8)
    assert lib.et_softmax_ce_forward(cl, buf(ffi, z), pred) == ET_OK
    assert lib.et_softmax_ce_backward(cl, buf(ffi, z), label, buf(ffi, g)) == ET_OK
    twin.equal(pred[0], ref.softmax_ce_forward(layer, z))
    twin.equal(g.tolist(), ref.softmax_ce_backward(layer, z, label).reshape(-1).tolist())
    assert pred[0] == int(np.argmax(z))  # first maximum
    # Close to the float gradient: exp2 error below 1e-4, one rounding of 1/2 LSB.
    zr = z.astype(float) / 4096
    p = np.exp(zr - zr.max())
    p /= p.sum()
    p[label] -= 1
    others = np.arange(n) != label
    # Every entry but the label's: one rounding of p[i].
    assert np.abs(g[others] - np.clip(p[others] * 128, -128, 127)).max(initial=0) <= 0.5 + 0.02
    # The label's entry makes the sum zero (unless -sum(others) is below -128), so it carries
    # the others' rounding errors: at most (n - 1) * 0.52 from the float value.
    total = int(g[others].astype(int).sum())
    assert int(g[label]) == max(-total, -128)
    want = max(-np.clip(p[others] * 128, -128, 127).sum(), -128)  # p[label] - 1 with the others as stored
    assert abs(int(g[label]) - want) <= (n - 1) * (0.5 + 0.02)


def test_softmax_gradient_sums_to_zero_when_the_others_round_to_zero(core):
    # A confident correct prediction: every p[i], i != label, below half an LSB. Rounding
    # the label's entry alone would give -1 LSB and push every logit up; the sum rule gives 0.
    ffi, lib = core
    z = np.array([-30000, 20000, -30000, -30000], np.int16)
    g = np.full(4, 7, np.int8)
    assert lib.et_softmax_ce_backward(c_layer(ffi, head_layer(4)), buf(ffi, z), 1, buf(ffi, g)) == ET_OK
    assert g.tolist() == [0, 0, 0, 0]
    z = np.array([0, 4096, 0, 0], np.int16)  # p = (0.175, 0.475, 0.175, 0.175): 22.4 -> 22 each
    assert lib.et_softmax_ce_backward(c_layer(ffi, head_layer(4)), buf(ffi, z), 1, buf(ffi, g)) == ET_OK
    assert g.tolist() == [22, -66, 22, 22]


def test_softmax_equal_logits_give_uniform_gradient(core):
    ffi, lib = core
    g = np.zeros(4, np.int8)
    lib.et_softmax_ce_backward(c_layer(ffi, head_layer(4)), buf(ffi, np.zeros(4, np.int16)), 2, buf(ffi, g))
    assert g.tolist() == [32, 32, -96, 32]


# ---- bad arguments ----------------------------------------------------------------------


def test_layer_functions_reject_bad_arguments_and_write_nothing(core):
    ffi, lib = core
    conv = Layer(LayerKind.CONV2D, Shape(4, 4, 1, FMT_INPUT), Shape(2, 2, 2, FMT_ACT), "c", Activation.RELU, Padding.VALID, 3, 1)
    w, b = np.ones((2, 3, 3, 1), np.int8), np.zeros(2, np.int16)
    x = np.ones((4, 4, 1), np.uint8)
    out = np.full((2, 2, 2), 7, np.uint8)
    cl = c_layer(ffi, conv)
    assert lib.et_conv2d_forward(cl, ffi.NULL, buf(ffi, b), buf(ffi, x), buf(ffi, out)) == ET_ERR_ARG
    assert lib.et_dense_forward(cl, buf(ffi, w), buf(ffi, b), buf(ffi, x), buf(ffi, out)) == ET_ERR_ARG  # wrong kind
    bad = c_layer(ffi, conv)
    bad.out.h = 3  # shapes do not chain: 4 - 3 + 1 = 2
    assert lib.et_conv2d_forward(bad, buf(ffi, w), buf(ffi, b), buf(ffi, x), buf(ffi, out)) == -3  # ET_ERR_CORRUPT
    assert (out == 7).all()
    g = np.full(3, 5, np.int8)
    assert lib.et_softmax_ce_backward(c_layer(ffi, head_layer(3)), buf(ffi, np.zeros(3, np.int16)), 3, buf(ffi, g)) == ET_ERR_ARG
    assert (g == 5).all()
    d = ffi.new("uint32_t *", 2**30 + 1)
    bn = Layer(LayerKind.BATCHNORM, Shape(2, 2, 1, FMT_ACT), Shape(2, 2, 1, 5), "bn")
    p = np.zeros((4, 1), np.int16)
    assert lib.et_batchnorm_update_stats(c_layer(ffi, bn), buf(ffi, np.zeros(4, np.uint8)), buf(ffi, p), d) == ET_ERR_ARG
    assert (p == 0).all() and d[0] == 2**30 + 1
    assert lib.et_relu_forward(ffi.NULL, ffi.NULL, 1) == ET_ERR_ARG


def test_twin_rejects_the_same_bad_arguments():
    conv = Layer(LayerKind.CONV2D, Shape(4, 4, 1, FMT_INPUT), Shape(2, 2, 2, FMT_ACT), "c", Activation.RELU, Padding.VALID, 3, 1)
    with pytest.raises(ArgumentError, match="expected 16 values of uint8"):
        ref.conv2d_forward(conv, np.ones((2, 3, 3, 1), np.int8), np.zeros(2, np.int16), np.ones(15, np.uint8))
    with pytest.raises(ArgumentError, match="expected a dense layer"):
        ref.dense_forward(conv, np.ones((2, 9), np.int8), np.zeros(2, np.int16), np.ones(16, np.uint8))
    with pytest.raises(CorruptError):
        ref.conv2d_forward(Layer(LayerKind.CONV2D, conv.in_shape, Shape(3, 3, 2, FMT_ACT), "c", Activation.RELU, Padding.VALID, 3, 1),
                           np.ones((2, 3, 3, 1), np.int8), np.zeros(2, np.int16), np.ones(16, np.uint8))
    with pytest.raises(ArgumentError, match="label 3 is outside 0..2"):
        ref.softmax_ce_backward(head_layer(3), np.zeros(3, np.int16), 3)
