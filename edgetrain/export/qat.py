"""Quantization-aware training (QAT) with the device's own forward pass (docs/export.md).

Keras layers whose forward pass computes, value for value, what the C core
computes at inference (docs/layers.md), and whose backward pass is the
straight-through estimator (STE):

``QConv2D`` / ``QDense``
    float "shadow" weights (the real value ``alpha * w_int * 2^-7``, kept in
    ``[-128, 127] * alpha * 2^-7`` by a constraint), quantized in the forward
    pass to int8 with the layer's fixed scale ``alpha = 2^-alpha_shift``; the
    bias to int16 at 2^-12. The multiply-accumulate runs on these exact grid
    values, then ``t = rq(acc)`` into the bias format, ``z = clamp(t + b)``
    and, with ReLU, ``a = rq(z, 5, 0, 255)``: every rounding is
    ``sign(x) * floor(|x| + 1/2)`` (ties away from zero; ``tf.round`` rounds
    ties to even and is not used).
``QBatchNorm``
    the streaming batch norm of the device. It stores what the device stores:
    gamma, beta, and the running mean and mean square of its input (not the
    variance). ``mode="batch"`` (default) normalises a training batch with its
    own statistics (float, the usual batch-norm gradient) and moves the stored
    ones towards them; ``mode="frozen"`` uses the stored statistics in
    training too. At inference, and in frozen training, the forward pass is the
    device's integer arithmetic on the statistics rounded to their int16
    formats: ``var = max(msq * 2^15 - mean^2, 1)``, ``sigma = isqrt(var *
    2^16)``, ``inv = div(2^36, sigma)``, ``xhat = rq((x*32 - mean) * inv, 16)``,
    ``y = rq(gamma * xhat + beta * 2^12, 18, -128, 127)``.
``InputQuantizer``
    the device's input format: a pixel ``p`` is ``p / 256``; values are put on
    that grid (uint8 at 2^-8).

The model's input is ``p / 256`` (``device_input``), its output the logits in
the bias format ([-8, 8), LSB 2^-12): train it with
``SparseCategoricalCrossentropy(from_logits=True)``. Max pooling and flatten
are the ordinary Keras layers (exact). ``from_model`` builds the QAT model of a
device model (e.g. a preset), ``to_device`` exports it; the export reads the
same integers the forward pass uses, so nothing is rounded twice.

Exactness. Every tensor holds integers times a power of two. A product sum is
exact in float32 when ``fan_in * 128 * 255 < 2^24`` (every partial sum is then
an integer multiple of the LSB below 2^24); layers beyond that (paper-cnn's
wide convs and fc1) run their multiply-accumulate in float64 when ``exact`` is
True (default), which holds any of the device's int32 sums. Batch norm always
runs in float64/int64. ``exact=False`` keeps everything in float32: faster,
and off by an LSB only when a partial sum passes 2^24.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import ArgumentError, UnsupportedError
from ..model.description import Activation, LayerKind, Model, Padding
from ..model.presets import alpha_shift_for

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
try:
    import keras
    import tensorflow as tf
except ImportError as exc:  # pragma: no cover - depends on the install
    raise UnsupportedError("quantization-aware training needs TensorFlow/Keras: pip install 'edgetrain[tf]'") from exc

EXACT_F32_LIMIT = 1 << 24  # integers up to 2^24 are exact in float32
BN_MOMENTUM = 0.99
PACKAGE = "edgetrain"

INT8 = (-128, 127)
UINT8 = (0, 255)
INT16 = (-32768, 32767)


# ---- the rounding rule and the quantizers --------------------------------------------


def round_away(x):
    """Nearest integer, ties away from zero, exact for every float (|x| - floor|x| is exact)."""
    a = tf.abs(x)
    f = tf.floor(a)
    return tf.sign(x) * (f + tf.cast(a - f >= 0.5, x.dtype))


def np_round_away(x) -> np.ndarray:
    """The same rule in NumPy (float64)."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize(x, lsb_exp: int, lo: int, hi: int, mask: bool = True):
    """x -> clamp(round_away(x * 2^-lsb_exp), lo, hi) * 2^lsb_exp, with a straight-through gradient.

    The gradient passes unchanged where ``lo <= x * 2^-lsb_exp <= hi`` and is 0
    outside when ``mask`` (the device's masks at clipping points), else everywhere.
    """

    @tf.custom_gradient
    def _q(v):
        scaled = v * tf.constant(2.0 ** -lsb_exp, v.dtype)
        y = tf.clip_by_value(round_away(scaled), lo, hi) * tf.constant(2.0**lsb_exp, v.dtype)

        def grad(dy):
            if not mask:
                return dy
            return dy * tf.cast((scaled >= lo) & (scaled <= hi), dy.dtype)

        return y, grad

    return _q(tf.convert_to_tensor(x))


def forward_as(surrogate, exact, keep=None):
    """``exact`` in the forward pass, the gradient of ``surrogate`` (times ``keep``) in the backward pass."""
    exact = tf.stop_gradient(tf.cast(exact, surrogate.dtype))

    @tf.custom_gradient
    def _f(s):
        def grad(dy):
            return dy if keep is None else dy * keep

        return tf.identity(exact), grad

    return _f(tf.convert_to_tensor(surrogate))


def weight_ints(kernel: np.ndarray, alpha_shift: int) -> np.ndarray:
    """Shadow weights (real) -> the device's int8 weights, as the forward pass quantizes them."""
    q = np_round_away(np.asarray(kernel, np.float32).astype(np.float64) * 2.0 ** (7 + alpha_shift))
    return np.clip(q, *INT8).astype(np.int8)


def bias_ints(values: np.ndarray, lsb_exp: int = -12) -> np.ndarray:
    q = np_round_away(np.asarray(values, np.float32).astype(np.float64) * 2.0 ** (-lsb_exp))
    return np.clip(q, *INT16).astype(np.int16)


# ---- constraints and layers ---------------------------------------------------------------


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClipTo(keras.constraints.Constraint):
    """Keep shadow values inside the range their quantizer represents."""

    def __init__(self, lo: float, hi: float):
        self.lo, self.hi = float(lo), float(hi)

    def __call__(self, w):
        return keras.ops.clip(w, self.lo, self.hi)

    def get_config(self):
        return {"lo": self.lo, "hi": self.hi}


class _QMac(keras.layers.Layer):
    """Shared part of QConv2D and QDense: quantized weights and bias, the device's rescale chain."""

    def __init__(self, units: int, relu: bool = True, alpha_shift: int | None = None, exact: bool = True, **kwargs):
        super().__init__(**kwargs)
        if units < 1:
            raise ArgumentError(f"{type(self).__name__}: units/filters must be positive, got {units}")
        if alpha_shift is not None and not 0 <= int(alpha_shift) <= 15:
            raise ArgumentError(f"{type(self).__name__}: alpha_shift {alpha_shift} is outside 0..15")
        self.units = int(units)
        self.relu = bool(relu)
        self.alpha_shift = None if alpha_shift is None else int(alpha_shift)
        self.exact = bool(exact)

    def _make_weights(self, kernel_shape, fan_in: int):
        if self.alpha_shift is None:
            self.alpha_shift = alpha_shift_for(fan_in, 2 if self.relu else 1)
        self.fan_in = int(fan_in)
        step = 2.0 ** (-7 - self.alpha_shift)
        limit = 2.0**-self.alpha_shift  # He-uniform with a power-of-two limit, as the presets
        self.kernel = self.add_weight(
            name="kernel", shape=kernel_shape, initializer=keras.initializers.RandomUniform(-limit, limit - step),
            constraint=ClipTo(-128 * step, 127 * step),
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros",
                                    constraint=ClipTo(-8.0, 8.0 - 2.0**-12))

    @property
    def wide(self) -> bool:
        """Whether the exact multiply-accumulate needs float64 (a partial sum may reach 2^24)."""
        return self.fan_in * 128 * 255 >= EXACT_F32_LIMIT

    def _mac(self, x, w):
        raise NotImplementedError

    def call(self, x):
        w = quantize(self.kernel, -7 - self.alpha_shift, *INT8, mask=False)
        b = quantize(self.bias, -12, *INT16, mask=False)
        if self.exact and self.wide:
            acc = self._mac(tf.cast(x, tf.float64), tf.cast(w, tf.float64))
        else:
            acc = self._mac(x, w)
        t = tf.cast(quantize(acc, -12, *INT16, mask=False), x.dtype)  # rq into the bias format
        z = quantize(t + b, -12, *INT16, mask=False)  # clamp(t + b): exact, the clamp saturates
        if self.relu:
            return quantize(z, -7, *UINT8)  # ReLU and the [0, 2) clip in one rescale; STE mask
        return z

    def device_tensors(self) -> tuple[np.ndarray, np.ndarray]:
        """(int8 weights in the device layout, int16 bias): exactly what the forward pass uses."""
        kernel, bias = (np.asarray(v) for v in self.get_weights())
        w = weight_ints(kernel, self.alpha_shift)
        return self._device_layout(w), bias_ints(bias)

    def set_device_tensors(self, weights: np.ndarray, bias: np.ndarray) -> None:
        """Load the device's integers (a preset, a .etm) as shadow weights."""
        w = np.asarray(weights, np.float64) * 2.0 ** (-7 - self.alpha_shift)
        self.set_weights([self._keras_layout(w).astype(np.float32), (np.asarray(bias, np.float64) * 2.0**-12).astype(np.float32)])

    def get_config(self):
        return {**super().get_config(), "relu": self.relu, "alpha_shift": self.alpha_shift, "exact": self.exact}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QConv2D(_QMac):
    """The device's conv2d (stride 1, square odd-or-any kernel, 'valid' or 'same')."""

    def __init__(self, filters: int, kernel_size: int = 3, padding: str = "valid", relu: bool = True,
                 alpha_shift: int | None = None, exact: bool = True, **kwargs):
        super().__init__(filters, relu, alpha_shift, exact, **kwargs)
        if padding not in ("valid", "same"):
            raise ArgumentError(f"QConv2D: padding {padding!r}; the device supports 'valid' and 'same'")
        if not 1 <= int(kernel_size) <= 15 or (padding == "same" and int(kernel_size) % 2 == 0):
            raise ArgumentError(f"QConv2D: kernel size {kernel_size}; the device supports 1..15 (odd with 'same')")
        self.kernel_size = int(kernel_size)
        self.padding = padding

    def build(self, input_shape):
        in_c = int(input_shape[-1])
        k = self.kernel_size
        self._make_weights((k, k, in_c, self.units), k * k * in_c)

    def _mac(self, x, w):
        return tf.nn.conv2d(x, w, strides=1, padding=self.padding.upper())

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        if self.padding == "valid":
            h, w = h - self.kernel_size + 1, w - self.kernel_size + 1
        return (input_shape[0], h, w, self.units)

    def _device_layout(self, w):
        return np.ascontiguousarray(w.transpose(3, 0, 1, 2))  # HWIO -> OHWI

    def _keras_layout(self, w):
        return w.reshape(self.units, self.kernel_size, self.kernel_size, -1).transpose(1, 2, 3, 0)

    def get_config(self):
        return {**super().get_config(), "filters": self.units, "kernel_size": self.kernel_size, "padding": self.padding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QDense(_QMac):
    """The device's dense layer."""

    def build(self, input_shape):
        in_c = int(input_shape[-1])
        self._make_weights((in_c, self.units), in_c)

    def _mac(self, x, w):
        return tf.matmul(x, w)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def _device_layout(self, w):
        return np.ascontiguousarray(w.T)

    def _keras_layout(self, w):
        return w.reshape(self.units, -1).T

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=PACKAGE)
class InputQuantizer(keras.layers.Layer):
    """The device's input format: uint8 at 2^-8 (a pixel p is p / 256)."""

    def call(self, x):
        return quantize(x, -8, *UINT8, mask=False)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class QBatchNorm(keras.layers.Layer):
    """The device's streaming batch norm on activation-format inputs (see the module doc)."""

    MODES = ("batch", "frozen")

    def __init__(self, mode: str = "batch", momentum: float = BN_MOMENTUM, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ArgumentError(f"QBatchNorm: mode {mode!r}; use 'batch' or 'frozen'")
        if not 0.0 <= momentum < 1.0:
            raise ArgumentError(f"QBatchNorm: momentum {momentum} is outside [0, 1)")
        self.mode = mode
        self.momentum = float(momentum)

    def build(self, input_shape):
        c = int(input_shape[-1])
        self.gamma = self.add_weight(name="gamma", shape=(c,), initializer="ones", constraint=ClipTo(-8.0, 8.0 - 2.0**-12))
        self.beta = self.add_weight(name="beta", shape=(c,), initializer="zeros", constraint=ClipTo(-8.0, 8.0 - 2.0**-12))
        self.moving_mean = self.add_weight(name="moving_mean", shape=(c,), initializer="zeros", trainable=False)
        self.moving_msq = self.add_weight(name="moving_msq", shape=(c,), initializer="ones", trainable=False)

    def compute_output_shape(self, input_shape):
        return input_shape

    # Integer constants of the device (et_batchnorm_prepare), int64 per channel.
    def _constants(self):
        mean = tf.cast(tf.clip_by_value(round_away(tf.cast(self.moving_mean, tf.float64) * 4096.0), *INT16), tf.int64)
        msq = tf.cast(tf.clip_by_value(round_away(tf.cast(self.moving_msq, tf.float64) * 512.0), *INT16), tf.int64)
        var = tf.maximum(msq * 32768 - mean * mean, 1)
        v = var * 65536
        s = tf.cast(tf.floor(tf.sqrt(tf.cast(v, tf.float64))), tf.int64)
        s = s - tf.cast(s * s > v, tf.int64)  # exact floor(sqrt(v)), checked by squaring
        s = s + tf.cast((s + 1) * (s + 1) <= v, tf.int64)
        inv = tf.math.floordiv((1 << 36) + s // 2, s)  # div(2^36, s), s > 0: nearest, ties up (= away)
        return mean, inv

    def _device_forward(self, x):
        mean, inv = self._constants()
        g = tf.clip_by_value(round_away(tf.cast(self.gamma, tf.float64) * 4096.0), *INT16)
        b = tf.clip_by_value(round_away(tf.cast(self.beta, tf.float64) * 4096.0), *INT16)
        x12 = tf.cast(x, tf.float64) * 4096.0  # x * 32 in integer terms (LSB 2^-12)
        xhat = round_away((x12 - tf.cast(mean, tf.float64)) * tf.cast(inv, tf.float64) * 2.0**-16)
        y = tf.clip_by_value(round_away((g * xhat + b * 4096.0) * 2.0**-18), *INT8)
        return y, mean, inv

    def call(self, x, training=None):
        g = quantize(self.gamma, -12, *INT16, mask=False)
        b = quantize(self.beta, -12, *INT16, mask=False)
        if training and self.mode == "batch":
            mean = tf.reduce_mean(x, axis=[0, 1, 2])
            msq = tf.reduce_mean(tf.square(x), axis=[0, 1, 2])
            var = tf.maximum(msq - tf.square(mean), 0.0)
            m = self.momentum
            self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * tf.stop_gradient(mean))
            self.moving_msq.assign(m * self.moving_msq + (1.0 - m) * tf.stop_gradient(msq))
            y = g * (x - mean) * tf.math.rsqrt(var + 2.0**-24) + b
            return quantize(y, -6, *INT8)
        y_int, mean, inv = self._device_forward(x)
        surrogate = g * (x - tf.cast(mean, x.dtype) * 2.0**-12) * tf.cast(tf.cast(inv, tf.float64) * 2.0**-16, x.dtype) + b
        keep = tf.cast((y_int > INT8[0]) & (y_int < INT8[1]), x.dtype)
        return forward_as(surrogate, y_int * 2.0**-6, keep)

    def device_tensors(self) -> np.ndarray:
        """The int16 [4, c] block the device stores: gamma, beta, mean (2^-12), mean square (2^-9)."""
        gamma, beta, mean, msq = (np.asarray(v) for v in self.get_weights())
        return np.stack([bias_ints(gamma), bias_ints(beta), bias_ints(mean), bias_ints(msq, -9)])

    def set_device_tensors(self, bn: np.ndarray) -> None:
        bn = np.asarray(bn, np.float64).reshape(4, -1)
        self.set_weights([(bn[0] * 2.0**-12).astype(np.float32), (bn[1] * 2.0**-12).astype(np.float32),
                          (bn[2] * 2.0**-12).astype(np.float32), (bn[3] * 2.0**-9).astype(np.float32)])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "momentum": self.momentum}


QAT_LAYERS = (QConv2D, QDense, QBatchNorm, InputQuantizer)


# ---- models --------------------------------------------------------------------------------


def device_input(images) -> np.ndarray:
    """uint8 images [n, h, w] or [n, h, w, c] -> float32 [n, h, w, c] holding p / 256 (the model's input)."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise ArgumentError(f"device_input takes uint8 pixels, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., np.newaxis]
    return x.astype(np.float32) * np.float32(2.0**-8)


def from_model(model, *, load_tensors: bool = True, exact: bool = True, bn_mode: str = "batch", name: str | None = None):
    """The QAT Keras model of a device model (``Model`` or preset name): same layers, formats and alphas.

    With ``load_tensors`` the device's integers become the starting shadow weights
    (and batch-norm statistics), so the Keras forward pass starts equal to the device's.
    """
    if isinstance(model, str):
        from ..model.loader import load_model

        model = load_model(model)
    if not isinstance(model, Model):
        raise ArgumentError(f"from_model takes a device Model or a model name, got {type(model).__name__}")
    i = model.input_shape
    inp = keras.Input((i.h, i.w, i.c), name="pixels_over_256")
    x = InputQuantizer(name="input_q")(inp)
    plan = []
    for layer in model.layers:
        kind = layer.kind
        relu = layer.activation == Activation.RELU
        if kind == LayerKind.CONV2D:
            q = QConv2D(layer.out_shape.c, layer.kernel, "same" if layer.padding == Padding.SAME else "valid", relu,
                        layer.alpha_shift, exact, name=layer.name)
        elif kind == LayerKind.DENSE:
            q = QDense(layer.out_shape.c, relu, layer.alpha_shift, exact, name=layer.name)
        elif kind == LayerKind.MAXPOOL2:
            q = keras.layers.MaxPooling2D(2, name=layer.name)
        elif kind == LayerKind.BATCHNORM:
            q = QBatchNorm(bn_mode, name=layer.name)
        elif kind == LayerKind.FLATTEN:
            q = keras.layers.Flatten(name=layer.name)
        elif kind == LayerKind.SOFTMAX_CE:
            continue
        else:  # pragma: no cover - check_model knows every kind
            raise UnsupportedError(f"layer {layer.name!r}: kind {kind} has no QAT layer")
        x = q(x)
        plan.append((q, layer))
    qat = keras.Model(inp, x, name=name or model.name)
    if load_tensors:
        for q, layer in plan:
            if isinstance(q, _QMac):
                q.set_device_tensors(layer.weights, layer.bias)
            elif isinstance(q, QBatchNorm):
                q.set_device_tensors(layer.bn)
    return qat


def set_bn_mode(model, mode: str) -> None:
    """Switch every QBatchNorm to 'batch' or 'frozen' (recompile the model afterwards)."""
    if mode not in QBatchNorm.MODES:
        raise ArgumentError(f"batch-norm mode {mode!r}; use 'batch' or 'frozen'")
    for layer in model.layers:
        if isinstance(layer, QBatchNorm):
            layer.mode = mode


def set_exact(model, exact: bool) -> None:
    """Float64 accumulation for wide layers (exact) or float32 everywhere (fast); recompile afterwards."""
    for layer in model.layers:
        if isinstance(layer, _QMac):
            layer.exact = bool(exact)


def calibrate_bn(model, x, batch_size: int = 256) -> None:
    """Set every QBatchNorm's stored statistics to the exact mean and mean square of its
    input over ``x`` (float64 sums), layer by layer in order."""
    bns = [layer for layer in model.layers if isinstance(layer, QBatchNorm)]
    for bn in bns:
        probe = keras.Model(model.inputs, bn.input)
        s1 = s2 = None
        count = 0
        for start in range(0, len(x), batch_size):
            a = np.asarray(probe(tf.constant(x[start : start + batch_size]), training=False), np.float64)
            a = a.reshape(-1, a.shape[-1])
            s1 = a.sum(axis=0) if s1 is None else s1 + a.sum(axis=0)
            s2 = (a * a).sum(axis=0) if s2 is None else s2 + (a * a).sum(axis=0)
            count += a.shape[0]
        gamma, beta, _, _ = bn.get_weights()
        bn.set_weights([gamma, beta, (s1 / count).astype(np.float32), (s2 / count).astype(np.float32)])


def logits(model, x, batch_size: int = 500) -> np.ndarray:
    """The inference-mode logits (real values, multiples of 2^-12), float64 [n, classes]."""
    out = [np.asarray(model(x[i : i + batch_size], training=False), np.float64) for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0))


def predict_labels(model, x, batch_size: int = 500) -> np.ndarray:
    """Predicted classes: the first largest logit, as the device's head."""
    return np.argmax(logits(model, x, batch_size), axis=1)


def to_device(model, *, name: str | None = None):
    """Export a QAT Keras model -> device ``Model`` (the integers its forward pass uses)."""
    from .keras import from_keras

    return from_keras(model, name=name)
