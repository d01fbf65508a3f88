"""From a float layer chain to a device ``Model``: the one mapping both importers use.

The Keras and TFLite readers turn their model into a list of ``Op`` with
float64 parameters (conv kernels already OHWI, dense kernels [n][m]). ``lower``
then

1. rewrites the chain into what the device runs: a batch norm right after a
   conv/dense without activation is folded into it; a ReLU after a conv/dense
   without activation (possibly with 2x2 max pools in between: max pooling
   commutes with ReLU) becomes that layer's fused activation; Dropout is
   dropped; a final softmax, or a final linear dense, becomes the softmax
   cross-entropy head;
2. assigns shapes and numeric formats (et_model.h) and checks each step,
   naming the source layer in any error;
3. quantizes every tensor to its device format (docs/model-format.md,
   "Quantization of exported weights"):

   - weights: int8, LSB 2^-7, with the layer scale alpha = 2^-alpha_shift; the
     exporter picks the largest alpha_shift in 0..15 for which every weight
     w * 2^alpha_shift rounds into [-128, 127] * 2^-7, so the weights use as
     much of the int8 range as they can;
   - biases: int16, LSB 2^-12, range [-8, 8);
   - batch norm (docs/layers.md, "Streaming batch norm"): gamma, beta and the
     running mean in the bias format; the running mean square in the bn_sq
     format (LSB 2^-9, [-64, 64)). The device normalises by
     sqrt(msq - mean^2) (no epsilon; the variance is floored at 2^-24), so a
     Keras BatchNormalization stores msq = var + eps + mean^2; a QAT batch norm
     stores its own statistics as they are.

   Rounding is the project's one rule (nearest, ties away from zero). A value
   that does not fit raises RangeError naming the layer, unless
   ``saturate=True`` (then it is clamped and counted in the report).

The report (``LayerReport``) gives weight-level error statistics per layer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import RangeError, UnsupportedError
from ..model import Activation, Layer, LayerKind, Model, Padding, Shape
from ..model.kinds import kind_of_export_op
from ..model.validate import check_model
from ..reference import fixed

MAX_ALPHA_SHIFT = 15


@dataclass
class Op:
    """One step of a float model. ``kind``: conv, dense, maxpool, relu, bn, flatten, softmax, identity."""

    kind: str
    name: str
    weights: np.ndarray | None = None  # conv [o, k, k, i]; dense [n, m]; float64
    bias: np.ndarray | None = None
    activation: str = "linear"  # conv/dense: "linear" or "relu"
    padding: str = "valid"  # conv: "valid" or "same"
    bn: dict | None = None  # gamma, beta, mean, var (arrays), eps (float)
    source_step: float | None = None  # the source's own weight quantization step (TFLite), for the report
    alpha_shift: int | None = None  # a fixed layer scale (QAT layers); None: chosen from the weights


@dataclass
class LayerReport:
    """How well the device tensors represent the source's float tensors."""

    name: str
    kind: str
    alpha_shift: int = 0
    weight_max_abs: float = 0.0
    weight_rms: float = 0.0
    weight_err_max: float = 0.0
    weight_err_rms: float = 0.0
    weight_err_rel: float = 0.0  # err_rms / weight_rms
    weight_saturated: int = 0
    bias_err_max: float = 0.0
    bias_saturated: int = 0
    bn_sigma_err_rel: float = 0.0  # batch norm: largest relative error of the device's sigma per channel
    device_step: float = 0.0  # alpha * 2^-7, the device's weight LSB in real units
    source_step: float | None = None  # the source's largest weight step (TFLite scales), if any
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Conversion:
    """A converted model, what was done to get it, and notes about the input."""

    model: Model
    layers: list[LayerReport]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        rows = [f"{'layer':<24} {'kind':<9} {'alpha':>6} {'max|w|':>8} {'err max':>9} {'err rms':>9} {'rel rms':>8} {'sat':>4}"]
        for r in self.layers:
            if r.kind in ("conv2d", "dense"):
                rows.append(
                    f"{r.name[:24]:<24} {r.kind:<9} {'2^-' + str(r.alpha_shift):>6} {r.weight_max_abs:8.4f} "
                    f"{r.weight_err_max:9.2e} {r.weight_err_rms:9.2e} {r.weight_err_rel:8.2%} {r.weight_saturated + r.bias_saturated:4d}"
                )
            else:
                rows.append(f"{r.name[:24]:<24} {r.kind:<9}")
        return "\n".join(rows + [f"note: {n}" for n in self.notes])


def round_away(x: np.ndarray) -> np.ndarray:
    """Nearest integer, ties away from zero (the project's rounding rule), as float64."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize(x: np.ndarray, fmt_id: int, what: str, saturate: bool) -> tuple[np.ndarray, int]:
    """x (real) -> stored integers of format fmt_id, and how many were clamped."""
    fmt = fixed.FORMATS[fmt_id]
    q = round_away(np.asarray(x, np.float64) * 2.0 ** (-fmt.lsb_exp))
    over = int(np.count_nonzero((q < fmt.qmin) | (q > fmt.qmax)))
    if over and not saturate:
        lo, hi = fmt.real_range
        raise RangeError(
            f"{what}: {over} value(s) outside the {fixed.FORMAT_NAMES[fmt_id]} range [{lo:g}, {hi:g}] "
            f"(largest magnitude {float(np.max(np.abs(x))):.4g}); retrain with smaller values "
            "(e.g. weight/bias clipping or quantization-aware training) or pass saturate=True (--saturate) to clamp"
        )
    dtype = np.int8 if fmt.bits == 8 and fmt.is_signed else np.uint8 if fmt.bits == 8 else np.int16
    return np.clip(q, fmt.qmin, fmt.qmax).astype(dtype), over


def choose_alpha_shift(w: np.ndarray) -> int | None:
    """Largest s in 0..15 with every round(w * 2^(s+7)) in [-128, 127]; None if even s = 0 fails."""
    best = None
    for s in range(MAX_ALPHA_SHIFT + 1):
        q = round_away(w * 2.0 ** (s + 7))
        if q.size and (q.min() < -128 or q.max() > 127):
            break
        best = s
    return best


def _rewrite(ops: list[Op]) -> list[Op]:
    """Fold batch norms, fuse ReLUs, drop identities (step 1 of the module doc)."""
    out: list[Op] = []
    for op in ops:
        if op.kind == "identity":
            continue
        if op.kind == "bn" and out and out[-1].kind in ("conv", "dense") and out[-1].activation == "linear":
            mac = out[-1]
            p = op.bn
            scale = p["gamma"] / np.sqrt(p["var"] + p["eps"])
            bias = mac.bias if mac.bias is not None else np.zeros(mac.weights.shape[0])
            mac.weights = mac.weights * scale.reshape((-1,) + (1,) * (mac.weights.ndim - 1))
            mac.bias = (bias - p["mean"]) * scale + p["beta"]
            mac.name = f"{mac.name}+{op.name}"
            continue
        if op.kind == "relu":
            back = len(out) - 1
            while back >= 0 and out[back].kind == "maxpool":
                back -= 1
            if back >= 0 and out[back].kind in ("conv", "dense") and out[back].activation == "linear":
                out[back].activation = "relu"
                out[back].name = f"{out[back].name}+{op.name}"
                continue
            raise UnsupportedError(
                f"layer {op.name!r} (ReLU): the device fuses ReLU into the conv/dense layer before it; "
                "this ReLU does not follow a conv/dense without activation (only max pooling may stand between)"
            )
        out.append(op)
    return out


def lower(ops: list[Op], input_shape: tuple[int, ...], name: str, *, saturate: bool = False) -> Conversion:
    """Turn a float op chain into a checked device Model plus a mapping report."""
    if len(input_shape) == 1:
        h, w, c = 1, 1, int(input_shape[0])
    elif len(input_shape) == 3:
        h, w, c = (int(v) for v in input_shape)
    else:
        raise UnsupportedError(f"input shape {tuple(input_shape)}: the device takes HxWxC images or flat vectors")
    if min(h, w, c) < 1 or max(h, w, c) > 0xFFFF:
        raise UnsupportedError(f"input shape {tuple(input_shape)}: every dimension must be 1..65535")
    ops = _rewrite([Op(**{**op.__dict__}) for op in ops])
    if ops and ops[-1].kind == "softmax":
        ops.pop()  # the device's head is softmax cross-entropy: appended after the last dense
    for op in ops:
        if op.kind == "softmax":
            raise UnsupportedError(f"layer {op.name!r} (softmax): softmax is supported only as the model's output")
    shape = Shape(h, w, c, fixed.FMT_INPUT)
    layers: list[Layer] = []
    reports: list[LayerReport] = []
    notes: list[str] = []
    for index, op in enumerate(ops):
        last = index == len(ops) - 1
        label = f"layer {op.name!r}"
        if op.kind in ("conv", "dense"):
            if shape.fmt not in (fixed.FMT_INPUT, fixed.FMT_ACT, fixed.FMT_BN_OUT):
                raise UnsupportedError(
                    f"{label}: a {op.kind} layer must take the model input, a ReLU output or a batch-norm output; "
                    "here it follows a layer without activation (add a ReLU, or merge the two linear layers)"
                )
            n = op.weights.shape[0]
            if op.kind == "conv":
                k = op.weights.shape[1]
                if op.weights.shape[1] != op.weights.shape[2] or op.weights.shape[3] != shape.c:
                    raise UnsupportedError(f"{label}: kernel {op.weights.shape[1:3]} over {shape.c} channels; the device needs square kernels")
                if not 1 <= k <= 15 or (op.padding == "same" and k % 2 == 0):
                    raise UnsupportedError(f"{label}: kernel size {k}; the device supports 1..15 (odd with 'same' padding)")
                if op.padding == "valid":
                    if shape.h < k or shape.w < k:
                        raise UnsupportedError(f"{label}: a valid {k}x{k} conv needs at least {k}x{k} inputs, got {shape.h}x{shape.w}")
                    oh, ow = shape.h - k + 1, shape.w - k + 1
                else:
                    oh, ow = shape.h, shape.w
            else:
                k = 0
                if (shape.h, shape.w) != (1, 1):
                    raise UnsupportedError(f"{label}: a dense layer takes a flat vector; put a Flatten before it (input is {shape.h}x{shape.w}x{shape.c})")
                if op.weights.shape[1] != shape.c:
                    raise UnsupportedError(f"{label}: weights take {op.weights.shape[1]} inputs, the layer gets {shape.c}")
                oh = ow = 1
            relu = op.activation == "relu"
            if last and relu:
                raise UnsupportedError(f"{label}: the last layer must give logits (no ReLU): the device appends a softmax cross-entropy head")
            out = Shape(oh, ow, n, fixed.FMT_ACT if relu else fixed.FMT_BIAS)
            wq, report = _quantize_mac(op, label, saturate)
            bias = op.bias if op.bias is not None else np.zeros(n)
            bq, bsat = quantize(bias, fixed.FMT_BIAS, f"{label} bias", saturate)
            report.bias_err_max = float(np.max(np.abs(bq * 2.0**-12 - bias))) if n else 0.0
            report.bias_saturated = bsat
            layers.append(
                Layer(
                    kind_of_export_op(op.kind), shape, out, _device_name(op.name, index),
                    Activation.RELU if relu else Activation.NONE,
                    Padding.SAME if op.padding == "same" else Padding.VALID, k, report.alpha_shift, wq, bq,
                )
            )
            reports.append(report)
            shape = out
            if last:
                layers.append(Layer(LayerKind.SOFTMAX_CE, shape, shape, "head"))
                reports.append(LayerReport("head", "head"))
            continue
        if op.kind == "maxpool":
            if shape.h < 2 or shape.w < 2:
                raise UnsupportedError(f"{label}: 2x2 max pooling needs at least 2x2 inputs, got {shape.h}x{shape.w}")
            out = Shape(shape.h // 2, shape.w // 2, shape.c, shape.fmt)
            layers.append(Layer(LayerKind.MAXPOOL2, shape, out, _device_name(op.name, index)))
            reports.append(LayerReport(op.name, "maxpool2"))
            shape = out
        elif op.kind == "flatten":
            if (shape.h, shape.w) == (1, 1):
                continue
            out = Shape(1, 1, shape.h * shape.w * shape.c, shape.fmt)
            if out.c > 0xFFFF:
                raise UnsupportedError(f"{label}: flattening gives {out.c} values; the device allows 65535")
            layers.append(Layer(LayerKind.FLATTEN, shape, out, _device_name(op.name, index)))
            reports.append(LayerReport(op.name, "flatten"))
            shape = out
        elif op.kind == "bn":
            if shape.fmt != fixed.FMT_ACT:
                raise UnsupportedError(
                    f"{label} (BatchNormalization): the device's batch norm takes ReLU outputs; this one follows "
                    "something else. Put it right after a ReLU, or right after a conv/dense without activation (then it is folded)"
                )
            bn, report = _quantize_bn(op, label, shape.c, saturate)
            out = Shape(shape.h, shape.w, shape.c, fixed.FMT_BN_OUT)
            layers.append(Layer(LayerKind.BATCHNORM, shape, out, _device_name(op.name, index), bn=bn))
            reports.append(report)
            shape = out
        else:
            raise UnsupportedError(f"{label}: operation {op.kind!r} has no device layer")
        if last:
            raise UnsupportedError(f"{label}: the model must end with a dense layer (logits), optionally followed by softmax")
    if not layers or layers[-1].kind != LayerKind.SOFTMAX_CE:
        raise UnsupportedError("the model must end with a dense layer (logits), optionally followed by softmax")
    model = Model(_device_name(name, 0, limit=63), layers)
    check_model(model)
    return Conversion(model, reports, notes)


def _device_name(name: str, index: int, limit: int = 63) -> str:
    """A printable-ASCII name of at most ``limit`` bytes (the .etm string rule)."""
    text = "".join(ch if 0x20 <= ord(ch) <= 0x7E else "_" for ch in name) or f"layer{index}"
    return text[:limit]


def _quantize_mac(op: Op, label: str, saturate: bool) -> tuple[np.ndarray, LayerReport]:
    w = np.asarray(op.weights, np.float64)
    shift = choose_alpha_shift(w) if op.alpha_shift is None else int(op.alpha_shift)
    report = LayerReport(op.name, kind_of_export_op(op.kind).name.lower(), source_step=op.source_step)
    if op.alpha_shift is not None:
        report.notes.append(f"layer scale 2^-{shift} fixed by the source (QAT)")
    if shift is None:
        if not saturate:
            raise RangeError(
                f"{label}: weights up to {float(np.max(np.abs(w))):.4g} need a layer scale alpha > 1; the device's "
                "alpha is 2^-s with s in 0..15, so weights must lie in [-1, 1). Retrain with smaller weights "
                "(weight clipping, QAT) or pass saturate=True (--saturate) to clamp"
            )
        shift = 0
    report.alpha_shift = shift
    wq, report.weight_saturated = quantize(w * 2.0**shift, fixed.FMT_WEIGHT, f"{label} weights", saturate)
    err = wq.astype(np.float64) * 2.0 ** (-7 - shift) - w
    report.weight_max_abs = float(np.max(np.abs(w))) if w.size else 0.0
    report.weight_rms = float(np.sqrt(np.mean(w**2))) if w.size else 0.0
    report.weight_err_max = float(np.max(np.abs(err))) if w.size else 0.0
    report.weight_err_rms = float(np.sqrt(np.mean(err**2))) if w.size else 0.0
    report.weight_err_rel = report.weight_err_rms / report.weight_rms if report.weight_rms else 0.0
    report.device_step = 2.0 ** (-7 - shift)
    return wq, report


def _quantize_bn(op: Op, label: str, c: int, saturate: bool) -> tuple[np.ndarray, LayerReport]:
    p = op.bn
    rows = [np.broadcast_to(np.asarray(p[key], np.float64), (c,)) for key in ("gamma", "beta", "mean")]
    if "msq" in p:  # the device's own statistics (QAT): mean square as stored
        meansq = np.broadcast_to(np.asarray(p["msq"], np.float64), (c,))
        target_var = meansq - rows[2] ** 2
    else:  # Keras: y = gamma (x - mean) / sqrt(var + eps) + beta; the device divides by sqrt(msq - mean^2)
        target_var = np.broadcast_to(np.asarray(p["var"], np.float64) + p["eps"], (c,))
        meansq = target_var + rows[2] ** 2
    report = LayerReport(op.name, "batchnorm")
    out = np.zeros((4, c), np.int16)
    for r, (values, fmt, what) in enumerate(
        zip(rows + [meansq], (fixed.FMT_BIAS,) * 3 + (fixed.FMT_BN_SQ,), ("gamma", "beta", "moving mean", "mean square"))
    ):
        q, sat = quantize(values, fmt, f"{label} {what}", saturate)
        out[r] = q
        report.bias_saturated += sat
        report.bias_err_max = max(report.bias_err_max, float(np.max(np.abs(q * 2.0 ** fixed.FORMATS[fmt].lsb_exp - values))))
    report.bn_sigma_err_rel = bn_sigma_error(out, target_var)
    if report.bn_sigma_err_rel > 0.05:
        report.notes.append(
            f"batch norm: the stored mean square (LSB 2^-9) gives a standard deviation up to {report.bn_sigma_err_rel:.1%} "
            "off the source's for some channel (small variance next to a large mean); quantization-aware training "
            "(edgetrain.export.qat) trains against the stored statistics instead"
        )
    return out, report


def bn_sigma_error(bn: np.ndarray, target_var: np.ndarray) -> float:
    """Largest relative error of the device's sigma (from the stored int16 statistics,
    et_batchnorm_prepare) against sqrt(target_var), over the channels."""
    mean = bn[2].astype(np.int64)
    msq = bn[3].astype(np.int64)
    var = np.maximum(msq * 32768 - mean * mean, 1)  # LSB 2^-24
    device_sigma = np.sqrt(var.astype(np.float64)) * 2.0**-12
    want = np.sqrt(np.maximum(np.asarray(target_var, np.float64), 2.0**-24))
    return float(np.max(np.abs(device_sigma - want) / want)) if want.size else 0.0
