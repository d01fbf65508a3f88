"""TFLite (int8 or float) flatbuffer -> device Model, without TensorFlow.

Reads the model with the pure-Python ``tflite`` flatbuffer package. The graph
must be one chain of CONV_2D, MAX_POOL_2D, RESHAPE (a flatten),
FULLY_CONNECTED, RELU and a final SOFTMAX, with QUANTIZE/DEQUANTIZE at its
ends; fused activations NONE or RELU. Each weight tensor is dequantized with
its own per-tensor or per-channel scale and zero point (real = scale *
(q - zero_point)) and then mapped to the device's power-of-two formats by
``lower.lower``: the device has one scale per layer (alpha = 2^-alpha_shift),
so channels with small TFLite scales lose resolution. The report gives the
weight-level error per layer and the TFLite step next to the device step.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import ArgumentError, CorruptError, EdgetrainError, UnsupportedError
from .lower import Conversion, Op, lower

SUPPORTED = "CONV_2D, MAX_POOL_2D, RESHAPE (flatten), FULLY_CONNECTED, RELU, SOFTMAX (last), QUANTIZE/DEQUANTIZE (at the ends)"


def import_tflite():
    try:
        import tflite  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise UnsupportedError("importing TFLite models needs the tflite package: pip install 'edgetrain[tflite]'") from exc
    return tflite


class _Reader:
    def __init__(self, data: bytes):
        tfl = import_tflite()
        self.tfl = tfl
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise CorruptError("not a TFLite flatbuffer (file identifier 'TFL3' missing at byte 4)")
        try:
            self.model = tfl.Model.GetRootAsModel(data, 0)
            if self.model.SubgraphsLength() != 1:
                raise UnsupportedError(f"the model has {self.model.SubgraphsLength()} subgraphs; one is supported")
            self.graph = self.model.Subgraphs(0)
        except (IndexError, ValueError, TypeError) as exc:  # a damaged flatbuffer
            raise CorruptError(f"the TFLite flatbuffer is damaged ({exc})") from exc
        self.names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
        self.type_names = {v: k for k, v in vars(tfl.TensorType).items() if not k.startswith("_")}

    def opcode(self, op) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        value = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        return self.names.get(value, f"builtin {value}")

    def tensor(self, index: int):
        return self.graph.Tensors(index)

    def tensor_name(self, index: int) -> str:
        return self.tensor(index).Name().decode("utf-8", "replace")

    def shape(self, index: int) -> tuple[int, ...]:
        t = self.tensor(index)
        return tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else ()

    def quant(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        q = self.tensor(index).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        scale = np.asarray(q.ScaleAsNumpy(), np.float64)
        zero = np.asarray(q.ZeroPointAsNumpy(), np.int64) if q.ZeroPointLength() else np.zeros(scale.shape, np.int64)
        return scale, zero

    def values(self, index: int, what: str) -> tuple[np.ndarray, float | None]:
        """A constant tensor as float64 (dequantized), and its largest quantization step."""
        t = self.tensor(index)
        data = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            raise UnsupportedError(f"{what} ({self.tensor_name(index)}) is not a constant stored in the file")
        dtypes = {self.tfl.TensorType.INT8: "<i1", self.tfl.TensorType.UINT8: "<u1", self.tfl.TensorType.INT32: "<i4",
                  self.tfl.TensorType.FLOAT32: "<f4"}
        if t.Type() not in dtypes:
            raise UnsupportedError(f"{what} ({self.tensor_name(index)}) has type {self.type_names.get(t.Type(), t.Type())}; "
                                   "int8, uint8, int32 (biases) and float32 are supported")
        shape = self.shape(index)
        raw = np.frombuffer(data.tobytes(), dtypes[t.Type()])
        if raw.size != int(np.prod(shape)):
            raise CorruptError(f"{what} ({self.tensor_name(index)}): {raw.size} values for shape {shape}")
        raw = raw.reshape(shape).astype(np.float64)
        if t.Type() == self.tfl.TensorType.FLOAT32:
            return raw, None
        q = self.quant(index)
        if q is None:
            raise UnsupportedError(f"{what} ({self.tensor_name(index)}) is an integer tensor without quantization parameters")
        scale, zero = q
        if scale.size == 1:
            return (raw - zero[0]) * scale[0], float(scale[0])
        axis = self.tensor(index).Quantization().QuantizedDimension()
        if axis != 0 or scale.size != shape[0]:
            raise UnsupportedError(f"{what} ({self.tensor_name(index)}): per-channel scales on axis {axis} are not supported (axis 0 is)")
        bshape = (-1,) + (1,) * (len(shape) - 1)
        return (raw - zero.reshape(bshape)) * scale.reshape(bshape), float(scale.max())

    def options(self, op, cls):
        opts = cls()
        table = op.BuiltinOptions()
        if table is None:
            return None
        opts.Init(table.Bytes, table.Pos)
        return opts


def _short(name: str) -> str:
    """A readable layer name from a TFLite tensor name ("seq/conv2d_1/Relu;seq/..." -> "conv2d_1")."""
    parts = name.split(";")[0].split("/")
    return parts[-2] if len(parts) >= 2 else parts[-1]


def _fused(reader: _Reader, value: int, label: str) -> str:
    act = reader.tfl.ActivationFunctionType
    if value == act.NONE:
        return "linear"
    if value == act.RELU:
        return "relu"
    names = {v: k for k, v in vars(act).items() if not k.startswith("_")}
    raise UnsupportedError(f"{label}: fused activation {names.get(value, value)} is not supported (NONE and RELU are)")


def tflite_ops(data: bytes) -> tuple[list[Op], tuple[int, ...], list[str]]:
    """Read a TFLite flatbuffer into float ops; also notes about its input and activation ranges."""
    r = _Reader(data)
    tfl = r.tfl
    g = r.graph
    if g.InputsLength() != 1 or g.OutputsLength() != 1:
        raise UnsupportedError("the model must have one input and one output")
    current = int(g.Inputs(0))
    in_shape = r.shape(current)
    if len(in_shape) not in (2, 4) or in_shape[0] not in (1, -1):
        raise UnsupportedError(f"input shape {in_shape}: expected [1, H, W, C] or [1, N]")
    notes = []
    ops: list[Op] = []
    n_ops = g.OperatorsLength()
    for i in range(n_ops):
        op = g.Operators(i)
        name = r.opcode(op)
        inputs = [int(op.Inputs(j)) for j in range(op.InputsLength())]
        outputs = [int(op.Outputs(j)) for j in range(op.OutputsLength())]
        out_name = r.tensor_name(outputs[0]) if outputs else "?"
        label = f"operator {i} {name} ({out_name})"
        if not inputs or inputs[0] != current or len(outputs) != 1:
            raise UnsupportedError(f"{label}: the graph is not a single chain of operators")
        if name == "QUANTIZE" and i == 0:
            q = r.quant(outputs[0])
            if q is not None:
                notes.append(f"input quantized by the model: scale {q[0][0]:.6g}, zero point {int(q[1][0])}")
        elif name == "DEQUANTIZE" and i == n_ops - 1:
            pass
        elif name == "CONV_2D":
            o = r.options(op, tfl.Conv2DOptions)
            if o.StrideW() != 1 or o.StrideH() != 1 or o.DilationWFactor() != 1 or o.DilationHFactor() != 1:
                raise UnsupportedError(f"{label}: the device's conv has stride 1 and no dilation")
            w, step = r.values(inputs[1], f"{label} filter")
            if w.ndim != 4:
                raise UnsupportedError(f"{label}: filter of rank {w.ndim}")
            b = r.values(inputs[2], f"{label} bias")[0] if len(inputs) > 2 and inputs[2] >= 0 else None
            padding = "same" if o.Padding() == tfl.Padding.SAME else "valid"
            ops.append(Op("conv", _short(out_name), w, b, _fused(r, o.FusedActivationFunction(), label), padding, source_step=step))
        elif name == "FULLY_CONNECTED":
            o = r.options(op, tfl.FullyConnectedOptions)
            if o is not None and o.WeightsFormat() != 0:
                raise UnsupportedError(f"{label}: shuffled weight formats are not supported")
            if len(r.shape(current)) > 2:
                ops.append(Op("flatten", "flatten"))
            w, step = r.values(inputs[1], f"{label} weights")
            b = r.values(inputs[2], f"{label} bias")[0] if len(inputs) > 2 and inputs[2] >= 0 else None
            act = _fused(r, o.FusedActivationFunction(), label) if o is not None else "linear"
            ops.append(Op("dense", _short(out_name), w, b, act, source_step=step))
        elif name == "MAX_POOL_2D":
            o = r.options(op, tfl.Pool2DOptions)
            if (o.FilterWidth(), o.FilterHeight(), o.StrideW(), o.StrideH()) != (2, 2, 2, 2):
                raise UnsupportedError(f"{label}: the device pools 2x2 with stride 2")
            shape = r.shape(current)
            if o.Padding() == tfl.Padding.SAME and (shape[1] % 2 or shape[2] % 2):
                raise UnsupportedError(f"{label}: 'same' pooling of an odd size {shape[1:3]} pads; the device drops the odd row/column")
            ops.append(Op("maxpool", _short(out_name)))
            if _fused(r, o.FusedActivationFunction(), label) == "relu":
                ops.append(Op("relu", _short(out_name)))
        elif name == "RESHAPE":
            src, dst = r.shape(current), r.shape(outputs[0])
            if len(dst) != 2 or dst[0] not in (1, -1) or dst[1] != int(np.prod(src[1:])):
                raise UnsupportedError(f"{label}: only a flatten ([1, H, W, C] -> [1, H*W*C]) is supported, got {src} -> {dst}")
            ops.append(Op("flatten", _short(out_name)))
        elif name == "RELU":
            ops.append(Op("relu", _short(out_name)))
        elif name == "SOFTMAX" and (i == n_ops - 1 or (i == n_ops - 2 and r.opcode(g.Operators(n_ops - 1)) == "DEQUANTIZE")):
            ops.append(Op("softmax", _short(out_name)))
        else:
            raise UnsupportedError(f"{label}: not supported by the device; supported operators: {SUPPORTED}")
        # Activation ranges the device's formats cannot hold (activation format [0, 2)).
        q = r.quant(outputs[0])
        if q is not None and name in ("CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "RELU") and q[0].size == 1:
            hi = float(q[0][0] * (127 - q[1][0]))
            following = [r.opcode(g.Operators(j)) for j in range(i + 1, n_ops)]
            logits = name == "FULLY_CONNECTED" and all(f in ("SOFTMAX", "DEQUANTIZE") for f in following)
            limit, what = (8.0, "logits (bias format) saturate at 8") if logits else (2.0, "activations saturate at 2")
            if hi > limit:
                notes.append(f"{label}: TFLite range reaches {hi:.3g}; device {what}; quantization-aware training (edgetrain.export.qat) keeps them in range")
        current = outputs[0]
    if current != int(g.Outputs(0)):
        raise UnsupportedError("the operator chain does not end at the model output")
    shape = in_shape[1:]
    q = r.quant(int(g.Inputs(0)))
    if q is not None and r.tensor(int(g.Inputs(0))).Type() in (tfl.TensorType.INT8, tfl.TensorType.UINT8):
        scale, zero = float(q[0][0]), int(q[1][0])
        notes.append(
            f"TFLite input: scale {scale:.6g}, zero point {zero} (real range [{scale * (-128 - zero):.4g}, {scale * (127 - zero):.4g}]); "
            "the device reads uint8 pixels as value/256 in [0, 1)"
        )
    return ops, shape, notes


def convert_tflite(source, *, name: str | None = None, saturate: bool = False) -> Conversion:
    """A .tflite file (path or bytes) -> Conversion (device model + report)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ArgumentError(f"{path}: no such file")
        data = path.read_bytes()
        name = name or path.stem
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        raise ArgumentError(f"convert_tflite takes a path or bytes, got {type(source).__name__}")
    try:
        ops, shape, notes = tflite_ops(data)
    except EdgetrainError:
        raise
    except (IndexError, ValueError, TypeError, AttributeError, struct.error) as exc:  # a damaged flatbuffer
        raise CorruptError(f"the TFLite flatbuffer is damaged or truncated ({type(exc).__name__}: {exc})") from exc
    conversion = lower(ops, shape, name or "tflite_model", saturate=saturate)
    conversion.notes.extend(notes)
    return conversion


def from_tflite(source, *, name: str | None = None, saturate: bool = False):
    """A .tflite file (path or bytes) -> device ``Model``."""
    return convert_tflite(source, name=name, saturate=saturate).model
