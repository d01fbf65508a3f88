"""Test plumbing for .etm blobs: CRC resealing, the C parser through cffi, and
the Python reader, each reduced to comparable values.

Field offsets here are written from docs/model-format.md, not taken from
edgetrain.model.etm, so the tests check the code against the specification.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from edgetrain import CorruptError, EdgetrainError, UnsupportedError, VersionError
from edgetrain.model import Activation, Layer, LayerKind, Model, Padding, Shape
from edgetrain.model.etm import read_etm
from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS, FMT_BN_OUT, FMT_INPUT

ET_OK, ET_ERR_ARG, ET_ERR_CORRUPT, ET_ERR_VERSION, ET_ERR_UNSUPPORTED = 0, -1, -3, -4, -7
CLASS_OF_STATUS = {ET_OK: None, ET_ERR_CORRUPT: CorruptError, ET_ERR_VERSION: VersionError, ET_ERR_UNSUPPORTED: UnsupportedError}

# docs/model-format.md, header table.
H_BLOB_SIZE, H_ALIGN, H_IMAGE_OFFSET, H_IMAGE_SIZE = 8, 12, 16, 20
H_N_LAYERS, H_N_TENSORS, H_NAME_LEN, H_PROV_LEN = 24, 26, 28, 30
H_META_CRC, H_HEADER_CRC = 56, 60
HEADER, LAYER, TENSOR = 64, 32, 20


def u16(blob, at):
    return struct.unpack_from("<H", blob, at)[0]


def u32(blob, at):
    return struct.unpack_from("<I", blob, at)[0]


def reseal(blob: bytes | bytearray) -> bytes:
    """Recompute the three CRCs (zlib's CRC-32 as the independent oracle) so that
    a deliberately edited blob reaches the checks behind them. Needs a header
    whose sizes still make sense; otherwise it leaves the CRCs alone."""
    b = bytearray(blob)
    if len(b) < HEADER:
        return bytes(b)
    image_offset, blob_size = u32(b, H_IMAGE_OFFSET), u32(b, H_BLOB_SIZE)
    if HEADER <= image_offset <= len(b):
        struct.pack_into("<I", b, H_META_CRC, zlib.crc32(bytes(b[HEADER:image_offset])))
    struct.pack_into("<I", b, H_HEADER_CRC, zlib.crc32(bytes(b[:60])))
    if 4 <= blob_size <= len(b):  # last: the header CRC is inside the whole-blob CRC
        struct.pack_into("<I", b, blob_size - 4, zlib.crc32(bytes(b[: blob_size - 4])))
    return bytes(b)


def c_table(ffi, model) -> dict:
    layers = []
    for i in range(model.n_layers):
        c = model.layers[i]
        shape = lambda s: (s.h, s.w, s.c, s.fmt)  # noqa: E731
        layers.append(
            (c.kind, c.activation, c.padding, c.kernel, c.alpha_shift, shape(getattr(c, "in")), shape(c.out),
             c.weight_offset, c.bias_offset, c.bn_offset)
        )
    return {"image_size": model.image_size, "layers": layers}


def py_table(parsed) -> dict:
    layers = []
    for layer, off in zip(parsed.model.layers, parsed.offsets):
        shape = lambda s: (s.h, s.w, s.c, s.fmt)  # noqa: E731
        layers.append(
            (int(layer.kind), int(layer.activation), int(layer.padding), layer.kernel, layer.alpha_shift,
             shape(layer.in_shape), shape(layer.out_shape), off.weight, off.bias, off.bn)
        )
    return {"image_size": parsed.image_size, "layers": layers}


class CParse:
    """One et_etm_parse call: status, bad offset, and the table on success."""

    def __init__(self, core, blob: bytes, flags: int = 0):
        ffi, lib = core
        self.buf = ffi.new("uint8_t[]", max(len(blob), 1))
        ffi.memmove(self.buf, blob, len(blob))
        self.model = ffi.new("et_model_t *")
        self.info = ffi.new("et_etm_info_t *")
        bad = ffi.new("uint32_t *", 0xDEADBEEF)
        self.status = lib.et_etm_parse(self.buf, len(blob), flags, self.model, self.info, bad)
        self.bad = bad[0]
        self.table = c_table(ffi, self.model) if self.status == ET_OK else None
        self.image_delta = (int(ffi.cast("uintptr_t", self.model.image)) - int(ffi.cast("uintptr_t", self.buf))) if self.status == ET_OK else None


def py_parse(blob: bytes, flags: int = 0):
    """(exception class or None, parsed file or None)."""
    try:
        return None, read_etm(blob, flags=flags)
    except EdgetrainError as exc:
        return type(exc), None


def rng_int8(rng, *shape):
    return rng.integers(-128, 128, shape, dtype=np.int8)


def rng_int16(rng, *shape):
    return rng.integers(-3000, 3000, shape, dtype=np.int16)


def conv_model(seed: int = 1) -> Model:
    """same-padded conv 3x3 -> valid conv 3x3 -> pool -> BN -> flatten -> dense ReLU -> dense -> head."""
    rng = np.random.default_rng(seed)
    return Model(
        "convnet",
        [
            Layer(LayerKind.CONV2D, Shape(10, 10, 1, FMT_INPUT), Shape(10, 10, 4, FMT_ACT), "c1", Activation.RELU, Padding.SAME, 3, 1, rng_int8(rng, 4, 3, 3, 1), rng_int16(rng, 4)),
            Layer(LayerKind.CONV2D, Shape(10, 10, 4, FMT_ACT), Shape(8, 8, 6, FMT_ACT), "c2", Activation.RELU, Padding.VALID, 3, 4, rng_int8(rng, 6, 3, 3, 4), rng_int16(rng, 6)),
            Layer(LayerKind.MAXPOOL2, Shape(8, 8, 6, FMT_ACT), Shape(4, 4, 6, FMT_ACT), "p"),
            Layer(LayerKind.BATCHNORM, Shape(4, 4, 6, FMT_ACT), Shape(4, 4, 6, FMT_BN_OUT), "bn", bn=rng_int16(rng, 4, 6)),
            Layer(LayerKind.FLATTEN, Shape(4, 4, 6, FMT_BN_OUT), Shape(1, 1, 96, FMT_BN_OUT), "f"),
            Layer(LayerKind.DENSE, Shape(1, 1, 96, FMT_BN_OUT), Shape(1, 1, 12, FMT_ACT), "d1", Activation.RELU, alpha_shift=5, weights=rng_int8(rng, 12, 96), bias=rng_int16(rng, 12)),
            Layer(LayerKind.DENSE, Shape(1, 1, 12, FMT_ACT), Shape(1, 1, 5, FMT_BIAS), "d2", Activation.NONE, alpha_shift=3, weights=rng_int8(rng, 5, 12), bias=rng_int16(rng, 5)),
            Layer(LayerKind.SOFTMAX_CE, Shape(1, 1, 5, FMT_BIAS), Shape(1, 1, 5, FMT_BIAS), "head"),
        ],
    )
