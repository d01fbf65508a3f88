"""NumPy twin of csrc/src/layers.c: the integer layer kernels (docs/layers.md).

Same names as the C functions without the ``et_`` prefix. Written in NumPy
idiom (im2col by stride tricks, whole-tensor masks and reductions), not as a
transliteration of the C loops; integers are exact throughout (int64, or
float64 products that are provably exact, see ``int_matmul``).

Activations are HWC arrays of their storage type (uint8 for the input and
activation formats, int8 for bn_out, int16 for the bias format); gradients are
int8 arrays of the same shape as the tensor they belong to.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ArgumentError
from ..model.description import Activation, Layer, LayerKind, Padding, Shape
from ..model.validate import check_layer
from . import fixed

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
BN_WINDOW = 10  # ET_BN_WINDOW: eta = 1 - 1/10
BN_ONE_Q30 = 1 << 30
LOG2E_Q15 = 47274  # round(log2(e) * 2^15)

# round(2^16 * 2^(j/32)), j = 0..32: the same numbers as the C table, computed here.
EXP2_TABLE = np.array([round(2.0 ** (16 + j / 32)) for j in range(33)], dtype=np.int64)

_DTYPE = {fixed.FMT_INPUT: np.uint8, fixed.FMT_ACT: np.uint8, fixed.FMT_BN_OUT: np.int8, fixed.FMT_BIAS: np.int16}


def storage_dtype(fmt: int):
    """NumPy dtype an activation of format ``fmt`` is stored in."""
    try:
        return _DTYPE[fmt]
    except KeyError:
        raise ArgumentError(f"format {fmt} is not an activation format") from None


def _expect(layer: Layer, kind: LayerKind) -> None:
    if layer.kind != kind:
        raise ArgumentError(f"expected a {kind.name.lower()} layer, got {LayerKind(layer.kind).name.lower()}")
    check_layer(layer, tensors=False)


def _tensor(x, shape: Shape, what: str) -> np.ndarray:
    arr = np.asarray(x)
    want = storage_dtype(shape.fmt)
    if arr.dtype != want or arr.size != shape.size:
        raise ArgumentError(f"{what}: expected {shape.size} values of {np.dtype(want).name}, got {arr.size} of {arr.dtype}")
    return arr.reshape(shape.h, shape.w, shape.c)


def _grad(g, shape: Shape, what: str) -> np.ndarray:
    arr = np.asarray(g)
    if arr.dtype != np.int8 or arr.size != shape.size:
        raise ArgumentError(f"{what}: expected {shape.size} int8 gradients, got {arr.size} of {arr.dtype}")
    return arr.reshape(shape.h, shape.w, shape.c)


CLIP_FIELDS = ("pre", "act", "grad", "weight", "param", "stats")  # et_clip_counts_t, in its order
U32_MAX = 0xFFFFFFFF


def count_clips(clips: dict | None, key: str, mask) -> None:
    """Add the number of True entries of ``mask`` (values that were clamped) to ``clips[key]``, saturating at
    2^32-1 as the C counters do; ``clips`` None counts nothing."""
    if clips is not None:
        clips[key] = min(clips[key] + int(np.count_nonzero(mask)), U32_MAX)


def _out(v, lo: int, hi: int) -> np.ndarray:
    """Where v lies outside [lo, hi]: the stores that clamp."""
    v = np.asarray(v)
    return (v < lo) | (v > hi)


def _rq(x, shift: int, lo: int, hi: int, clips: dict | None = None, key: str = "") -> np.ndarray:
    """The one rescale: saturate(round_shift(x, shift)) to [lo, hi]; clamped values counted under ``key``."""
    r = fixed.round_shift_s64(np.asarray(x, dtype=np.int64), shift)
    count_clips(clips, key, _out(r, lo, hi))
    return np.clip(r, lo, hi)


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer a @ b as int64.

    Uses a float64 matmul (BLAS) when every partial sum is an integer below
    2^53 in magnitude, which makes every float operation exact; otherwise int64.
    """
    a64 = np.asarray(a, dtype=np.int64)
    b64 = np.asarray(b, dtype=np.int64)
    if a64.size == 0 or b64.size == 0:
        return a64 @ b64
    bound = int(np.abs(a64).max()) * int(np.abs(b64).max()) * a64.shape[-1]
    if bound < 1 << 53:
        return (a64.astype(np.float64) @ b64.astype(np.float64)).astype(np.int64)
    return a64 @ b64


# ---- ReLU -----------------------------------------------------------------------


def relu_forward(z, clips: dict | None = None) -> np.ndarray:
    """int16 (LSB 2^-12) -> uint8 (LSB 2^-7): one requantize by 5 into [0, 255].

    clips: values above 255 are counted under "act" (z < 0 giving 0 is the ReLU, not a clip)."""
    r = fixed.round_shift_s64(np.asarray(z, dtype=np.int16).astype(np.int64), 5)
    count_clips(clips, "act", r > 255)
    return np.clip(r, 0, 255).astype(np.uint8)


def relu_backward(a, da) -> np.ndarray:
    """Straight-through mask: da where 0 < a < 255, else 0."""
    a = np.asarray(a)
    da = np.asarray(da, dtype=np.int8)
    if a.shape != da.shape:
        raise ArgumentError(f"relu_backward: a {a.shape} and da {da.shape} differ in shape")
    return np.where((a > 0) & (a < 255), da, 0).astype(np.int8)


# ---- conv / dense shared ----------------------------------------------------------


def _forward_shift(layer: Layer) -> int:
    return layer.alpha_shift - 5 - fixed.FORMATS[layer.in_shape.fmt].lsb_exp


def _finish(layer: Layer, acc: np.ndarray, bias: np.ndarray, clips: dict | None = None) -> np.ndarray:
    r = fixed.round_shift_s64(np.asarray(acc, dtype=np.int64), _forward_shift(layer))
    t = np.clip(r, INT16_MIN, INT16_MAX) + bias.astype(np.int64)
    count_clips(clips, "pre", _out(r, INT16_MIN, INT16_MAX) | _out(t, INT16_MIN, INT16_MAX))  # once per element
    z = np.clip(t, INT16_MIN, INT16_MAX).astype(np.int16)
    return relu_forward(z, clips) if layer.activation == Activation.RELU else z


def _check_params(layer: Layer, weights, bias):
    o, i = layer.out_shape, layer.in_shape
    if layer.kind == LayerKind.CONV2D:
        wshape = (o.c, layer.kernel, layer.kernel, i.c)
    else:
        wshape = (o.c, i.c)
    w = np.asarray(weights)
    if w.dtype != np.int8 or w.size != int(np.prod(wshape)):
        raise ArgumentError(f"weights: expected int8 of shape {wshape}, got {w.dtype} {w.shape}")
    w = w.reshape(o.c, -1)
    if bias is None:
        return w, None
    b = np.asarray(bias)
    if b.dtype != np.int16 or b.size != o.c:
        raise ArgumentError(f"bias: expected {o.c} int16 values, got {b.dtype} {b.shape}")
    return w, b.reshape(-1)


def _pad(layer: Layer) -> int:
    return (layer.kernel - 1) // 2 if layer.padding == Padding.SAME else 0


def im2col(layer: Layer, x: np.ndarray) -> np.ndarray:
    """All im2col rows of a conv input, (out.h*out.w, k*k*in_c) int64, OHWI order."""
    k, p = layer.kernel, _pad(layer)
    xs = np.pad(x.astype(np.int64), ((p, p), (p, p), (0, 0)))
    win = sliding_window_view(xs, (k, k), axis=(0, 1))  # (oh, ow, c, k, k)
    return win.transpose(0, 1, 3, 4, 2).reshape(layer.out_shape.h * layer.out_shape.w, -1)


# ---- Conv2D -------------------------------------------------------------------


def conv2d_forward(layer: Layer, weights, bias, x, clips: dict | None = None) -> np.ndarray:
    """clips (a CLIP_FIELDS dict, or None): clamped pre-activations add to "pre", ReLU outputs to "act"."""
    _expect(layer, LayerKind.CONV2D)
    w, b = _check_params(layer, weights, bias)
    xv = _tensor(x, layer.in_shape, "conv2d_forward input")
    acc = int_matmul(im2col(layer, xv), w.T)  # (pixels, out_c)
    o = layer.out_shape
    return _finish(layer, acc, b, clips).reshape(o.h, o.w, o.c)


GRAD16_LSB_EXP = -15  # ET_GRAD16_LSB_EXP: the wide gradient at a batch-norm output


def _grad_out(acc: np.ndarray, layer: Layer, wide: bool, clips: dict | None) -> np.ndarray:
    """int8 at 2^-7, or (wide) int16 at 2^-15, from sums worth 2^(-14 - alpha_shift); clamps counted as "grad"."""
    if wide:
        return _rq(acc, layer.alpha_shift - 1, INT16_MIN, INT16_MAX, clips, "grad").astype(np.int16)
    return _rq(acc, 7 + layer.alpha_shift, INT8_MIN, INT8_MAX, clips, "grad").astype(np.int8)


def conv2d_backward_input(layer: Layer, weights, dz, clips: dict | None = None) -> np.ndarray:
    """alpha * W^T dz as a transposed convolution, requantized to the gradient format."""
    return _conv2d_backward(layer, weights, dz, False, clips)


def conv2d_backward_input_s16(layer: Layer, weights, dz, clips: dict | None = None) -> np.ndarray:
    """The same sum as the wide int16 gradient (LSB 2^-15) that feeds a batch norm."""
    return _conv2d_backward(layer, weights, dz, True, clips)


def _conv2d_backward(layer: Layer, weights, dz, wide: bool, clips: dict | None) -> np.ndarray:
    _expect(layer, LayerKind.CONV2D)
    w, _ = _check_params(layer, weights, None)
    d = _grad(dz, layer.out_shape, "conv2d_backward_input dz").astype(np.int64)
    k, p = layer.kernel, _pad(layer)
    i = layer.in_shape
    # Scatter every pixel's W^T dz_t (k*k*in_c values) onto its receptive field.
    cols = int_matmul(d.reshape(-1, layer.out_shape.c), w)  # (pixels, k*k*in_c)
    cols = cols.reshape(layer.out_shape.h, layer.out_shape.w, k, k, i.c)
    acc = np.zeros((i.h + 2 * p, i.w + 2 * p, i.c), dtype=np.int64)
    oh, ow = layer.out_shape.h, layer.out_shape.w
    for ky in range(k):
        for kx in range(k):
            acc[ky : ky + oh, kx : kx + ow, :] += cols[:, :, ky, kx, :]
    return _grad_out(acc[p : p + i.h, p : p + i.w, :], layer, wide, clips)


def conv2d_weight_grad(layer: Layer, x, dz) -> np.ndarray:
    """sum over output pixels of dz_t x_t^T, int32 [out_c, k*k*in_c] (worth 2^(-7 + in_lsb))."""
    _expect(layer, LayerKind.CONV2D)
    xv = _tensor(x, layer.in_shape, "conv2d_weight_grad input")
    d = _grad(dz, layer.out_shape, "conv2d_weight_grad dz").reshape(-1, layer.out_shape.c)
    return int_matmul(d.T, im2col(layer, xv)).astype(np.int32)


def conv2d_bias_grad(layer: Layer, dz) -> np.ndarray:
    _expect(layer, LayerKind.CONV2D)
    d = _grad(dz, layer.out_shape, "conv2d_bias_grad dz")
    return d.astype(np.int64).sum(axis=(0, 1)).astype(np.int32)


def conv2d_im2col_row(layer: Layer, x, t: int) -> np.ndarray:
    _expect(layer, LayerKind.CONV2D)
    xv = _tensor(x, layer.in_shape, "conv2d_im2col_row input")
    pixels = layer.out_shape.h * layer.out_shape.w
    if not 0 <= t < pixels:
        raise ArgumentError(f"pixel {t} is outside 0..{pixels - 1}")
    return im2col(layer, xv)[t].astype(np.int16)


# ---- Dense ------------------------------------------------------------------------


def dense_forward(layer: Layer, weights, bias, x, clips: dict | None = None) -> np.ndarray:
    _expect(layer, LayerKind.DENSE)
    w, b = _check_params(layer, weights, bias)
    xv = _tensor(x, layer.in_shape, "dense_forward input").reshape(-1)
    acc = int_matmul(w, xv)
    return _finish(layer, acc, b, clips).reshape(1, 1, -1)


def dense_backward_input(layer: Layer, weights, dz, clips: dict | None = None) -> np.ndarray:
    return _dense_backward(layer, weights, dz, False, clips)


def dense_backward_input_s16(layer: Layer, weights, dz, clips: dict | None = None) -> np.ndarray:
    """The wide int16 gradient (LSB 2^-15) for a batch norm below."""
    return _dense_backward(layer, weights, dz, True, clips)


def _dense_backward(layer: Layer, weights, dz, wide: bool, clips: dict | None) -> np.ndarray:
    _expect(layer, LayerKind.DENSE)
    w, _ = _check_params(layer, weights, None)
    d = _grad(dz, layer.out_shape, "dense_backward_input dz").reshape(-1)
    return _grad_out(int_matmul(d, w), layer, wide, clips).reshape(1, 1, -1)


# ---- MaxPool 2x2 -------------------------------------------------------------------


def _pool_windows(layer: Layer, x: np.ndarray) -> np.ndarray:
    """(oh, ow, c, 4) windows in the order (0,0), (0,1), (1,0), (1,1)."""
    oh, ow = layer.out_shape.h, layer.out_shape.w
    v = x[: 2 * oh, : 2 * ow, :].reshape(oh, 2, ow, 2, -1)
    return v.transpose(0, 2, 4, 1, 3).reshape(oh, ow, -1, 4)


def maxpool2_forward(layer: Layer, x) -> np.ndarray:
    _expect(layer, LayerKind.MAXPOOL2)
    xv = _tensor(x, layer.in_shape, "maxpool2_forward input")
    return _pool_windows(layer, xv).max(axis=-1)


def maxpool2_backward(layer: Layer, x, dout) -> np.ndarray:
    """dout routed to each window's first maximum (np.argmax returns the first)."""
    _expect(layer, LayerKind.MAXPOOL2)
    xv = _tensor(x, layer.in_shape, "maxpool2_backward input")
    d = _grad(dout, layer.out_shape, "maxpool2_backward dout")
    win = _pool_windows(layer, xv)
    hit = np.argmax(win, axis=-1)[..., None] == np.arange(4)  # (oh, ow, c, 4) one-hot
    routed = np.where(hit, d[..., None], 0).astype(np.int8)
    oh, ow, c = d.shape
    din = np.zeros((layer.in_shape.h, layer.in_shape.w, c), dtype=np.int8)
    din[: 2 * oh, : 2 * ow, :] = routed.reshape(oh, ow, c, 2, 2).transpose(0, 3, 1, 4, 2).reshape(2 * oh, 2 * ow, c)
    return din


# ---- Flatten ---------------------------------------------------------------------


def flatten_forward(layer: Layer, x) -> np.ndarray:
    _expect(layer, LayerKind.FLATTEN)
    return _tensor(x, layer.in_shape, "flatten_forward input").reshape(1, 1, -1).copy()


def flatten_backward(layer: Layer, dout) -> np.ndarray:
    _expect(layer, LayerKind.FLATTEN)
    return _grad(dout, layer.out_shape, "flatten_backward dout").reshape(layer.in_shape.h, layer.in_shape.w, layer.in_shape.c).copy()


# ---- Streaming batch norm --------------------------------------------------------


def _bn_params(layer: Layer, params) -> np.ndarray:
    p = np.asarray(params)
    if p.dtype != np.int16 or p.size != 4 * layer.in_shape.c:
        raise ArgumentError(f"batch-norm params: expected int16 [4, {layer.in_shape.c}], got {p.dtype} {p.shape}")
    return p.reshape(4, -1)


def batchnorm_update_stats(layer: Layer, x, params, decay_q30: int,
                           clips: dict | None = None) -> tuple[np.ndarray, int]:
    """Return (new params with updated EMAs, new decay); clamped EMA values are counted as "stats"."""
    _expect(layer, LayerKind.BATCHNORM)
    xv = _tensor(x, layer.in_shape, "batchnorm input").astype(np.int64)
    p = _bn_params(layer, params).copy()
    if not 0 <= int(decay_q30) <= BN_ONE_Q30:
        raise ArgumentError(f"decay_q30 = {decay_q30} is outside 0..2^30")
    n = layer.in_shape.h * layer.in_shape.w
    s1 = xv.sum(axis=(0, 1))
    s2 = (xv * xv).sum(axis=(0, 1))
    m1 = fixed.div_round_s64(s1 * 32, n)
    m2 = fixed.div_round_s64(s2, 32 * n)
    w = BN_WINDOW
    e = np.stack([fixed.div_round_s64((w - 1) * p[2].astype(np.int64) + m1, w),
                  fixed.div_round_s64((w - 1) * p[3].astype(np.int64) + m2, w)])
    count_clips(clips, "stats", _out(e, INT16_MIN, INT16_MAX))
    p[2:4] = np.clip(e, INT16_MIN, INT16_MAX)
    return p, fixed.div_round_s64((w - 1) * int(decay_q30), w)


def batchnorm_corrected_stats(layer: Layer, params, decay_q30: int) -> np.ndarray:
    """Bias-corrected (mean_hat, msq_hat) as int16 [2, c] in their stored formats."""
    _expect(layer, LayerKind.BATCHNORM)
    p = _bn_params(layer, params).astype(np.int64)
    if not 0 <= int(decay_q30) <= BN_ONE_Q30:
        raise ArgumentError(f"decay_q30 = {decay_q30} is outside 0..2^30")
    corr = BN_ONE_Q30 - int(decay_q30)
    stats = p[2:4]
    if corr:
        stats = np.clip(fixed.div_round_s64(stats * BN_ONE_Q30, corr), INT16_MIN, INT16_MAX)
    return stats.astype(np.int16)


def batchnorm_prepare(layer: Layer, params, decay_q30: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (mean_hat, inv_sigma), int32 per channel."""
    mh, sh = batchnorm_corrected_stats(layer, params, decay_q30).astype(np.int64)
    var = np.maximum(sh * 32768 - mh * mh, 1)
    sigma = np.array([fixed.isqrt_u64(int(v) << 16) for v in var], dtype=np.int64)
    inv = fixed.div_round_s64(np.int64(1 << 36), sigma)
    return mh.astype(np.int32), inv.astype(np.int32)


def _bn_xhat(xv: np.ndarray, mean_hat, inv_sigma) -> np.ndarray:
    centred = xv.astype(np.int64) * 32 - np.asarray(mean_hat, dtype=np.int64)
    return fixed.round_shift_s64(centred * np.asarray(inv_sigma, dtype=np.int64), 16)


def batchnorm_forward(layer: Layer, x, params, mean_hat, inv_sigma, clips: dict | None = None) -> np.ndarray:
    _expect(layer, LayerKind.BATCHNORM)
    xv = _tensor(x, layer.in_shape, "batchnorm input")
    p = _bn_params(layer, params).astype(np.int64)
    xhat = _bn_xhat(xv, mean_hat, inv_sigma)
    return _rq(p[0] * xhat + (p[1] << 12), 18, INT8_MIN, INT8_MAX, clips, "act").astype(np.int8)


def batchnorm_backward(layer: Layer, x, out, params, mean_hat, inv_sigma, dout, clips: dict | None = None):
    """dout: the wide int16 gradient (LSB 2^-15). Return (din int8 at 2^-7,
    dgamma int64 [c] at 2^-27, dbeta int64 [c] at 2^-15)."""
    _expect(layer, LayerKind.BATCHNORM)
    xv = _tensor(x, layer.in_shape, "batchnorm input")
    y = _tensor(out, layer.out_shape, "batchnorm output")
    d = np.asarray(dout)
    if d.dtype != np.int16 or d.size != layer.out_shape.size:
        raise ArgumentError(f"batchnorm dout: expected {layer.out_shape.size} int16 gradients (LSB 2^-15), got {d.size} of {d.dtype}")
    d = d.reshape(layer.out_shape.h, layer.out_shape.w, layer.out_shape.c).astype(np.int64)
    p = _bn_params(layer, params).astype(np.int64)
    g = np.where((y > INT8_MIN) & (y < INT8_MAX), d, 0)
    din = _rq(g * p[0] * np.asarray(inv_sigma, dtype=np.int64), 36, INT8_MIN, INT8_MAX, clips, "grad").astype(np.int8)
    xhat = _bn_xhat(xv, mean_hat, inv_sigma)
    return din, (g * xhat).sum(axis=(0, 1)), g.sum(axis=(0, 1))


# ---- Softmax cross-entropy --------------------------------------------------------


def softmax_exp2_q16(u) -> np.ndarray | int:
    """2^(u/4096) in Q16 for u <= 0 (u > 0 counts as 0); table + linear interpolation."""
    scalar = np.ndim(u) == 0
    uv = np.minimum(np.atleast_1d(np.asarray(u, dtype=np.int64)), 0)
    q = np.floor_divide(uv, 4096)  # floor, as the C arithmetic shift
    f = uv - 4096 * q
    j, r = f >> 7, f & 127
    lo, hi = EXP2_TABLE[j], EXP2_TABLE[j + 1]
    mant = np.asarray(lo + fixed.round_shift_s64((hi - lo) * r, 7), dtype=np.int64)
    # Each element has its own right shift -q: apply the rounding rule once per distinct shift.
    shifts = -q
    out = np.empty(np.shape(uv), dtype=np.int64)
    for s in np.unique(shifts):
        sel = shifts == s
        out[sel] = fixed.round_shift_s64(mant[sel], int(s))
    return int(out[0]) if scalar else out


def softmax_ce_forward(layer: Layer, logits) -> int:
    """Index of the largest logit (the first on ties)."""
    _expect(layer, LayerKind.SOFTMAX_CE)
    z = _tensor(logits, layer.in_shape, "logits").reshape(-1)
    return int(np.argmax(z))


def softmax_ce_backward(layer: Layer, logits, label: int, clips: dict | None = None) -> np.ndarray:
    """p - onehot(label) in the gradient format (int8, LSB 2^-7), summing to zero.

    Every p[i] but the label's is rounded; the label's entry is minus their sum.
    """
    _expect(layer, LayerKind.SOFTMAX_CE)
    z = _tensor(logits, layer.in_shape, "logits").reshape(-1).astype(np.int64)
    n = z.size
    if not 0 <= int(label) < n:
        raise ArgumentError(f"label {label} is outside 0..{n - 1}")
    u = fixed.round_shift_s64((z - z.max()) * LOG2E_Q15, 15)
    e = softmax_exp2_q16(u)
    s = int(e.sum())
    q = np.asarray(fixed.div_round_s64(128 * e, s), dtype=np.int64)
    others = np.arange(n) != int(label)
    count_clips(clips, "grad", _out(q, INT8_MIN, INT8_MAX) & others)
    g = np.clip(q, INT8_MIN, INT8_MAX)
    g[int(label)] = 0
    count_clips(clips, "grad", _out(-int(g.sum()), INT8_MIN, INT8_MAX))
    g[int(label)] = min(max(-int(g.sum()), INT8_MIN), INT8_MAX)
    return g.astype(np.int8).reshape(1, 1, -1)
