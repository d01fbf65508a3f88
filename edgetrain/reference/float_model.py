"""The numerical truth: the same network math in float64, without quantization.

``FloatNet`` runs the forward and backward pass of a ``Model`` on real values:
conv/dense z = alpha * W x + b, ReLU without the [0, 2) clip, 2x2 max pooling
(first maximum wins), the paper's streaming batch norm (EMAs with eta = 0.9,
bias-corrected, variance clipped to [1e-8, 1e8], sigma = sqrt(var + 1e-8)),
softmax cross-entropy. No rounding anywhere; by default the formats'
clipping ranges and their straight-through masks are kept (they are part of
the network's function, not of its arithmetic), ``ranges=False`` drops them
too. Its gradients are what the integer pass approximates
(tests/test_float_truth.py compares their directions).

``FloatNet.sgd_step`` adds the paper's optimizer in float64 (per-sample SGD
with gradient max-norm, lr 0.01), for comparing training dynamics; with
``quantize_weights`` the weights are rounded to the 8-bit grid after each
update, as the integer core's NVM weights are.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..model.description import Activation, LayerKind, Model, Padding
from ..model.kinds import kind_name
from . import fixed

BN_ETA = 0.9


def _im2col(x: np.ndarray, k: int, pad: int, oh: int, ow: int) -> np.ndarray:
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(0, 1))  # (oh, ow, c, k, k)
    return win.transpose(0, 1, 3, 4, 2).reshape(oh * ow, -1)


def _col2im(cols: np.ndarray, shape, k: int, pad: int, oh: int, ow: int) -> np.ndarray:
    h, w, c = shape
    acc = np.zeros((h + 2 * pad, w + 2 * pad, c))
    cols = cols.reshape(oh, ow, k, k, c)
    for ky in range(k):
        for kx in range(k):
            acc[ky : ky + oh, kx : kx + ow, :] += cols[:, :, ky, kx, :]
    return acc[pad : pad + h, pad : pad + w, :]


class FloatMaxNorm:
    """The paper's gradient max-norm in float64 (lrt-paper-spec §4)."""

    def __init__(self, beta: float = 0.999, eps: float = 1e-4):
        self.beta, self.eps, self.k, self.moving = beta, eps, 0, eps

    def divisor(self, max_abs: float) -> float:
        self.k += 1
        x_max = max_abs + self.eps
        self.moving = self.beta * self.moving + (1 - self.beta) * x_max
        return max(x_max, self.moving / (1 - self.beta**self.k))


ACT_MAX = 2.0 - 2.0**-7  # largest activation (uint8, LSB 2^-7)
PRE_MIN, PRE_MAX = -8.0, 8.0 - 2.0**-12  # pre-activations and logits (int16, LSB 2^-12)
BN_MIN, BN_MAX = -2.0, 2.0 - 2.0**-6  # batch-norm output (int8, LSB 2^-6)


class FloatNet:
    """Float64 parameters and passes of a Model (values, not stored integers).

    ``ranges=True`` keeps the formats' clipping ranges (pre-activations in
    [-8, 8), activations in [0, 2), BN outputs in [-2, 2)) with the
    straight-through masks where a value was clipped, and drops only the
    rounding: the integer pass minus its quantization steps. ``ranges=False``
    is the unbounded network.
    """

    def __init__(self, model: Model, ranges: bool = True):
        self.model = model
        self.ranges = ranges
        self.params: list[dict] = []
        for layer in model.layers:
            p: dict = {}
            if layer.weights is not None:
                p["W"] = layer.weights.reshape(layer.weights.shape[0], -1).astype(np.float64) * 2.0**-7
                p["b"] = layer.bias.astype(np.float64) * 2.0**-12
                p["alpha"] = 2.0 ** -layer.alpha_shift
            if layer.bn is not None:
                bn = layer.bn.astype(np.float64)
                p["gamma"], p["beta"] = bn[0] * 2.0**-12, bn[1] * 2.0**-12
                p["mean"], p["msq"] = np.zeros(layer.in_shape.c), np.zeros(layer.in_shape.c)
                p["decay"] = 1.0
            self.params.append(p)
        self.cache: list[dict] = []
        self.trackers: dict = {}

    # ---- loading the integer state --------------------------------------------------
    def load(self, weights: dict[int, np.ndarray], biases: dict[int, np.ndarray], bn: dict[int, tuple[np.ndarray, int]] | None = None) -> None:
        """Take integer tensors (stored formats) as the current values: weights int8
        [n, m], biases int16, BN (int16 [4, c], decay_q30) with the EMAs."""
        for i, w in weights.items():
            self.params[i]["W"] = w.reshape(w.shape[0], -1).astype(np.float64) * 2.0**-7
        for i, b in biases.items():
            self.params[i]["b"] = b.astype(np.float64) * 2.0**-12
        for i, (t, decay_q30) in (bn or {}).items():
            t = t.astype(np.float64)
            p = self.params[i]
            p["gamma"], p["beta"], p["mean"] = t[0] * 2.0**-12, t[1] * 2.0**-12, t[2] * 2.0**-12
            p["msq"], p["decay"] = t[3] * 2.0**-9, decay_q30 / 2.0**30

    # ---- forward / backward ---------------------------------------------------------
    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """x: real-valued input (h, w, c); returns the logits."""
        cur = np.asarray(x, dtype=np.float64)
        self.cache = []
        for layer, p in zip(self.model.layers, self.params):
            c: dict = {"in": cur}
            kind = layer.kind
            if kind in (LayerKind.CONV2D, LayerKind.DENSE):
                if kind == LayerKind.CONV2D:
                    o = layer.out_shape
                    pad = (layer.kernel - 1) // 2 if layer.padding == Padding.SAME else 0
                    cols = _im2col(cur, layer.kernel, pad, o.h, o.w)
                    z = (p["alpha"] * cols @ p["W"].T + p["b"]).reshape(o.h, o.w, o.c)
                    c["cols"], c["pad"] = cols, pad
                else:
                    z = (p["alpha"] * p["W"] @ cur.reshape(-1) + p["b"]).reshape(1, 1, -1)
                if self.ranges:
                    c["zmask"] = (z > PRE_MIN) & (z < PRE_MAX)
                    z = np.clip(z, PRE_MIN, PRE_MAX)
                c["z"] = z
                cur = np.maximum(z, 0.0) if layer.activation == Activation.RELU else z
                if self.ranges and layer.activation == Activation.RELU:
                    c["amask"] = cur < ACT_MAX
                    cur = np.minimum(cur, ACT_MAX)
            elif kind == LayerKind.MAXPOOL2:
                o = layer.out_shape
                v = cur[: 2 * o.h, : 2 * o.w, :].reshape(o.h, 2, o.w, 2, -1).transpose(0, 2, 4, 1, 3).reshape(o.h, o.w, -1, 4)
                c["arg"] = np.argmax(v, axis=-1)
                cur = v.max(axis=-1)
            elif kind == LayerKind.BATCHNORM:
                if train:
                    p["mean"] = BN_ETA * p["mean"] + (1 - BN_ETA) * cur.mean(axis=(0, 1))
                    p["msq"] = BN_ETA * p["msq"] + (1 - BN_ETA) * (cur * cur).mean(axis=(0, 1))
                    p["decay"] *= BN_ETA
                corr = 1.0 - p["decay"]
                mean = p["mean"] / corr if corr > 0 else p["mean"]
                msq = p["msq"] / corr if corr > 0 else p["msq"]
                var = np.clip(msq - mean * mean, 1e-8, 1e8)
                sigma = np.sqrt(var + 1e-8)
                c["xhat"], c["sigma"] = (cur - mean) / sigma, sigma
                cur = p["gamma"] * c["xhat"] + p["beta"]
                if self.ranges:
                    c["ymask"] = (cur > BN_MIN) & (cur < BN_MAX)
                    cur = np.clip(cur, BN_MIN, BN_MAX)
            elif kind == LayerKind.FLATTEN:
                cur = cur.reshape(1, 1, -1)
            elif kind == LayerKind.SOFTMAX_CE:
                c["logits"] = cur.reshape(-1)
            else:
                raise UnsupportedError(f"the float model has no {kind_name(kind)} layer (docs/layers.md)")
            self.cache.append(c)
        return self.cache[-1]["logits"]

    def backward(self, label: int) -> list[dict]:
        """Gradients per layer: dW [n, m] (alpha included), db, dgamma, dbeta; after forward."""
        grads: list[dict] = [dict() for _ in self.model.layers]
        z = self.cache[-1]["logits"]
        p = np.exp(z - z.max())
        p /= p.sum()
        g = p.copy()
        g[int(label)] -= 1.0
        g = g.reshape(1, 1, -1)
        for i in range(len(self.model.layers) - 2, -1, -1):
            layer, prm, c = self.model.layers[i], self.params[i], self.cache[i]
            kind = layer.kind
            if kind in (LayerKind.CONV2D, LayerKind.DENSE):
                dz = g * (c["z"] > 0) if layer.activation == Activation.RELU else g
                if self.ranges:
                    dz = dz * c["zmask"] * (c["amask"] if "amask" in c else 1.0)
                if kind == LayerKind.CONV2D:
                    d2 = dz.reshape(-1, layer.out_shape.c)
                    grads[i]["dW"] = prm["alpha"] * d2.T @ c["cols"]
                    grads[i]["db"] = d2.sum(axis=0)
                    o = layer.out_shape
                    g = _col2im(prm["alpha"] * d2 @ prm["W"], c["in"].shape, layer.kernel, c["pad"], o.h, o.w)
                else:
                    d1 = dz.reshape(-1)
                    grads[i]["dW"] = prm["alpha"] * np.outer(d1, c["in"].reshape(-1))
                    grads[i]["db"] = d1
                    g = (prm["alpha"] * prm["W"].T @ d1).reshape(c["in"].shape)
            elif kind == LayerKind.MAXPOOL2:
                o = layer.out_shape
                routed = np.where(c["arg"][..., None] == np.arange(4), g[..., None], 0.0)
                din = np.zeros(c["in"].shape)
                din[: 2 * o.h, : 2 * o.w, :] = routed.reshape(o.h, o.w, -1, 2, 2).transpose(0, 3, 1, 4, 2).reshape(2 * o.h, 2 * o.w, -1)
                g = din
            elif kind == LayerKind.BATCHNORM:
                if self.ranges:
                    g = g * c["ymask"]
                grads[i]["dgamma"] = (g * c["xhat"]).sum(axis=(0, 1))
                grads[i]["dbeta"] = g.sum(axis=(0, 1))
                g = g * prm["gamma"] / c["sigma"]
            elif kind == LayerKind.FLATTEN:
                g = g.reshape(c["in"].shape)
            else:
                raise UnsupportedError(f"the float model has no {kind_name(kind)} layer (docs/layers.md)")
        return grads

    # ---- the paper's optimizer in float64 --------------------------------------------
    def sgd_step(self, x: np.ndarray, label: int, lr: float = 0.01, train_weights: bool = True,
                 quantize_weights: bool = False) -> int:
        """Prequential per-sample SGD with max-norm; returns the prediction before the update."""
        logits = self.forward(x, train=True)
        pred = int(np.argmax(logits))
        grads = self.backward(label)
        for i, (prm, gr) in enumerate(zip(self.params, grads)):
            for key, target, on in (("dW", "W", train_weights), ("db", "b", True), ("dgamma", "gamma", True), ("dbeta", "beta", True)):
                if key not in gr or not on:
                    continue
                gmax = float(np.abs(gr[key]).max())
                if gmax == 0.0:
                    continue
                div = self.trackers.setdefault((i, key), FloatMaxNorm()).divisor(gmax)
                prm[target] = prm[target] - lr * gr[key] / div
                if target == "W" and quantize_weights:
                    prm[target] = np.clip(np.round(prm[target] * 128), -128, 127) / 128
        return pred


def real_input(x_uint8: np.ndarray, shape) -> np.ndarray:
    """The real value of an input tensor in the input format (LSB 2^-8)."""
    return np.asarray(x_uint8, dtype=np.float64).reshape(shape.h, shape.w, shape.c) * 2.0 ** fixed.FORMATS[shape.fmt].lsb_exp
