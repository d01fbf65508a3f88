"""Keras (TensorFlow) model -> device Model.

Supported: Sequential models and functional models that are a single chain,
built from InputLayer, Conv2D, Dense, MaxPooling2D, ReLU (a layer, or
``activation="relu"``), Flatten, BatchNormalization, plus Dropout (an
identity at inference) and a final softmax (the device's head). Anything else
raises UnsupportedError naming the layer. The mapping itself is
``lower.lower``; this module only reads Keras.

Keras is imported lazily: the rest of edgetrain works without TensorFlow
(install it with ``pip install 'edgetrain[tf]'``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ArgumentError, UnsupportedError
from .lower import Conversion, Op, lower

SUPPORTED = ("InputLayer, Conv2D, Dense, MaxPooling2D, ReLU, Activation('relu'), Flatten, BatchNormalization, Dropout, "
             "and the QAT layers of edgetrain.export.qat (QConv2D, QDense, QBatchNorm, InputQuantizer)")


def import_keras():
    try:
        import keras  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise UnsupportedError(
            "exporting Keras models needs TensorFlow/Keras: pip install 'edgetrain[tf]'"
        ) from exc
    return keras


def load_keras(path) -> object:
    """Load a .keras (or legacy .h5) file without compiling it."""
    keras = import_keras()
    path = Path(path)
    if not path.is_file():
        raise ArgumentError(f"{path}: no such file")
    from . import qat  # noqa: F401, PLC0415 - registers the QAT layers for deserialisation

    return keras.models.load_model(path, compile=False)


def _pair(value, name: str, label: str) -> int:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or values[0] != values[1]:
        raise UnsupportedError(f"{label}: {name} {values} is not square; the device needs equal height and width")
    return int(values[0])


def _activation(layer, label: str, allow_softmax: bool) -> str:
    act = layer.get_config().get("activation", "linear")
    if isinstance(act, dict):  # serialised activation objects
        act = act.get("config", {}).get("name", act.get("class_name", "?"))
    act = str(act).lower()
    if act in ("linear", "relu") or (act == "softmax" and allow_softmax):
        return act
    raise UnsupportedError(
        f"{label}: activation {act!r} is not supported (use 'relu', or 'linear'; 'softmax' only on the last layer)"
    )


def _chain(model) -> list:
    """The model's layers in order, checking that they form one chain."""
    layers = list(model.layers)
    if type(model).__name__ == "Sequential":
        return layers
    for prev, layer in zip(layers, layers[1:]):
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        if len(inputs) != 1 or inputs[0] is not prev.output:
            raise UnsupportedError(
                f"layer {layer.name!r} ({type(layer).__name__}): the model is not a single chain of layers "
                "(branches, merges and shared layers are not supported)"
            )
    if len(model.outputs) != 1 or model.outputs[0] is not layers[-1].output:
        raise UnsupportedError("the model must have a single output, the last layer's")
    return layers


def keras_ops(model) -> tuple[list[Op], tuple[int, ...]]:
    """Read a Keras model into float ops (kernels transposed to OHWI / [n][m])."""
    try:
        input_shape = tuple(model.inputs[0].shape[1:]) if model.inputs else None
    except (AttributeError, ValueError, IndexError):  # an unbuilt Sequential has no inputs yet
        input_shape = None
    if input_shape is None or any(d is None for d in input_shape):
        raise UnsupportedError("the model needs a fixed input shape (build it with keras.Input((H, W, C)))")
    layers = _chain(model)
    ops: list[Op] = []
    for index, layer in enumerate(layers):
        cls = type(layer).__name__
        label = f"layer {layer.name!r} ({cls})"
        last = index == len(layers) - 1
        cfg = layer.get_config()
        if cls == "InputLayer":
            continue
        if type(layer).__module__.startswith("edgetrain.export.qat"):
            ops.append(_qat_op(layer, cls, label, first=not ops))
            continue
        if cls in ("Dropout",):
            ops.append(Op("identity", layer.name))
        elif cls == "Conv2D":
            if cfg.get("data_format", "channels_last") != "channels_last":
                raise UnsupportedError(f"{label}: data_format must be channels_last")
            if _pair(cfg["strides"], "strides", label) != 1 or _pair(cfg.get("dilation_rate", 1), "dilation", label) != 1:
                raise UnsupportedError(f"{label}: the device's conv has stride 1 and no dilation")
            if cfg.get("groups", 1) != 1:
                raise UnsupportedError(f"{label}: grouped convolution is not supported")
            _pair(cfg["kernel_size"], "kernel_size", label)
            padding = cfg.get("padding", "valid")
            if padding not in ("valid", "same"):
                raise UnsupportedError(f"{label}: padding {padding!r}; the device supports 'valid' and 'same'")
            weights = layer.get_weights()
            kernel = np.asarray(weights[0], np.float64).transpose(3, 0, 1, 2)  # HWIO -> OHWI
            bias = np.asarray(weights[1], np.float64) if cfg.get("use_bias", True) else None
            ops.append(Op("conv", layer.name, kernel, bias, _activation(layer, label, False), padding))
        elif cls == "Dense":
            weights = layer.get_weights()
            kernel = np.asarray(weights[0], np.float64)
            if kernel.ndim != 2:
                raise UnsupportedError(f"{label}: kernel of rank {kernel.ndim}")
            bias = np.asarray(weights[1], np.float64) if cfg.get("use_bias", True) else None
            act = _activation(layer, label, last)
            ops.append(Op("dense", layer.name, kernel.T.copy(), bias, "linear" if act == "softmax" else act))
            if act == "softmax":
                ops.append(Op("softmax", layer.name))
        elif cls == "MaxPooling2D":
            size = _pair(cfg["pool_size"], "pool_size", label)
            strides = _pair(cfg["strides"] if cfg.get("strides") is not None else cfg["pool_size"], "strides", label)
            if size != 2 or strides != 2:
                raise UnsupportedError(f"{label}: the device pools 2x2 with stride 2, got {size}x{size} stride {strides}")
            if cfg.get("padding", "valid") != "valid":
                raise UnsupportedError(f"{label}: pooling padding must be 'valid'")
            ops.append(Op("maxpool", layer.name))
        elif cls == "ReLU":
            if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
                raise UnsupportedError(f"{label}: only a plain ReLU (no max_value, negative_slope or threshold) is supported")
            ops.append(Op("relu", layer.name))
        elif cls == "Activation":
            act = _activation(layer, label, last)
            ops.append(Op({"relu": "relu", "linear": "identity", "softmax": "softmax"}[act], layer.name))
        elif cls == "Softmax" and last:
            ops.append(Op("softmax", layer.name))
        elif cls == "Flatten":
            ops.append(Op("flatten", layer.name))
        elif cls == "BatchNormalization":
            axis = cfg.get("axis", -1)
            axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
            if axis not in (-1, len(layer.input.shape) - 1):
                raise UnsupportedError(f"{label}: batch norm must normalise the channel (last) axis, got axis {axis}")
            c = int(layer.input.shape[-1])
            value = lambda v, default: np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float64) if v is not None else np.full(c, default)  # noqa: E731
            ops.append(
                Op(
                    "bn", layer.name,
                    bn={
                        "gamma": value(getattr(layer, "gamma", None), 1.0),
                        "beta": value(getattr(layer, "beta", None), 0.0),
                        "mean": value(layer.moving_mean, 0.0),
                        "var": value(layer.moving_variance, 1.0),
                        "eps": float(cfg.get("epsilon", 1e-3)),
                    },
                )
            )
        else:
            raise UnsupportedError(f"{label}: not supported by the device; supported layers: {SUPPORTED}")
    return ops, input_shape


def _qat_op(layer, cls: str, label: str, first: bool) -> Op:
    """A layer of edgetrain.export.qat: the integers its forward pass uses, at its fixed scale."""
    if cls == "InputQuantizer":
        if not first:
            raise UnsupportedError(f"{label}: the input quantizer must be the model's first layer (the device input format)")
        return Op("identity", layer.name)
    if cls in ("QConv2D", "QDense"):
        w, b = layer.device_tensors()
        shift = layer.alpha_shift
        real_w = w.astype(np.float64) * 2.0 ** (-7 - shift)
        act = "relu" if layer.relu else "linear"
        if cls == "QConv2D":
            return Op("conv", layer.name, real_w, b * 2.0**-12, act, layer.padding, alpha_shift=shift)
        return Op("dense", layer.name, real_w, b * 2.0**-12, act, alpha_shift=shift)
    if cls == "QBatchNorm":
        bn = layer.device_tensors().astype(np.float64)
        return Op("bn", layer.name, bn={"gamma": bn[0] * 2.0**-12, "beta": bn[1] * 2.0**-12, "mean": bn[2] * 2.0**-12,
                                          "msq": bn[3] * 2.0**-9})
    raise UnsupportedError(f"{label}: not supported by the device; supported layers: {SUPPORTED}")


def convert_keras(model, *, name: str | None = None, saturate: bool = False) -> Conversion:
    """A Keras model (object or path to .keras/.h5) -> Conversion (device model + report)."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        model = load_keras(path)
        name = name or path.stem
    ops, input_shape = keras_ops(model)
    conversion = lower(ops, input_shape, name or model.name, saturate=saturate)
    conversion.notes.append(
        "inputs: the device reads uint8 pixels as value/256 in [0, 1); feed the Keras model the same scaling"
    )
    return conversion


def from_keras(model, *, name: str | None = None, saturate: bool = False):
    """A Keras model (object or path) -> device ``Model``."""
    return convert_keras(model, name=name, saturate=saturate).model
