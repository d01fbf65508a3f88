"""The .etm model blob: writer (Model -> bytes) and reader (bytes -> Model).

docs/model-format.md is the specification; csrc/src/etm.c (``et_etm_parse``)
is the device's reader. This module is its twin: it checks the same things in
the same order and raises the exception class matching the C status
(CorruptError for ET_ERR_CORRUPT, VersionError, UnsupportedError), with a
message that names the field and says what to do.

The tensor placement is ``image.layout`` (alignment = the NVM program unit,
``base`` = the metadata in front of the image); the table-level checks are
``validate.check_model``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArgumentError, CorruptError, UnsupportedError, VersionError
from ..reference import fixed
from ..reference.crc import crc32
from .description import MAX_LAYERS, NO_TENSOR, Activation, Layer, LayerKind, Model, Padding, Shape
from .image import TensorOffsets, layout
from .validate import check_model

MAGIC = b"\x89ETM"
VERSION = 1
HEADER_BYTES = 64
LAYER_BYTES = 32
TENSOR_BYTES = 20
TRAILER_BYTES = 4
MAX_TENSORS = 3 * MAX_LAYERS
MAX_NAME = 63
MAX_PROVENANCE = 4095
MIN_ALIGN, MAX_ALIGN = 2, 65536
NO_INDEX = 0xFFFF
SKIP_BLOB_CRC = 1  # ET_ETM_SKIP_BLOB_CRC

ROLE_WEIGHTS, ROLE_BIAS, ROLE_BN = 1, 2, 3
ROLE_NAMES = {ROLE_WEIGHTS: "weights", ROLE_BIAS: "bias", ROLE_BN: "bn"}
ROLE_FMT = {ROLE_WEIGHTS: fixed.FMT_WEIGHT, ROLE_BIAS: fixed.FMT_BIAS, ROLE_BN: fixed.FMT_BIAS}
ROLE_DTYPE = {ROLE_WEIGHTS: np.dtype("<i1"), ROLE_BIAS: np.dtype("<i2"), ROLE_BN: np.dtype("<i2")}

# Header: magic, version, header_size, blob_size, align, image_offset, image_size,
# n_layers, n_tensors, name_len, provenance_len, 24 reserved bytes, meta_crc, header_crc.
_HEADER = struct.Struct("<4sHHIIIIHHHH24sII")
# Layer record: kind, activation, padding, kernel, alpha_shift, name_len, 3 tensor indices,
# in (h, w, c, fmt, reserved), out (h, w, c, fmt, reserved), 4 reserved bytes.
_LAYER = struct.Struct("<BBBBbBHHHHHHBBHHHBBI")
# Tensor descriptor: layer, role, fmt, ndim, dims[4], offset, bytes.
_TENSOR = struct.Struct("<BBBB4HII")
assert (_HEADER.size, _LAYER.size, _TENSOR.size) == (HEADER_BYTES, LAYER_BYTES, TENSOR_BYTES)

_FIX = "rewrite the file with `edgetrain export` or restore a known-good copy"


@dataclass
class EtmFile:
    """A parsed blob: the model plus what the header says about it."""

    model: Model
    align: int
    provenance: str
    version: int
    blob_size: int
    image_offset: int
    image_size: int
    blob_crc: int
    offsets: list[TensorOffsets] = field(default_factory=list)


def _printable(text: str, what: str, limit: int) -> bytes:
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        raise ArgumentError(f"{what} {text!r} has non-ASCII characters; .etm strings are printable ASCII") from None
    if any(b < 0x20 or b > 0x7E for b in data):
        raise ArgumentError(f"{what} {text!r} has control characters; .etm strings are printable ASCII")
    if len(data) > limit:
        raise ArgumentError(f"{what} is {len(data)} bytes long; at most {limit} fit in a .etm file")
    return data


def _tensors(layer: Layer):
    """(role, array) for each tensor slot of a layer, absent ones as None."""
    return ((ROLE_WEIGHTS, layer.weights), (ROLE_BIAS, layer.bias), (ROLE_BN, layer.bn))


def write_etm(model: Model, *, align: int = 4, provenance: str = "") -> bytes:
    """Serialise ``model`` into a .etm blob with tensors aligned to ``align`` bytes.

    ``align`` is the NVM program unit (a power of two, 2..65536). Raises
    CorruptError/UnsupportedError if the model would fail et_model_check and
    ArgumentError for bad names, provenance or alignment.
    """
    if not isinstance(align, int) or not MIN_ALIGN <= align <= MAX_ALIGN or align & (align - 1):
        raise ArgumentError(f"align must be a power of two in {MIN_ALIGN}..{MAX_ALIGN} bytes, got {align!r}")
    check_model(model)
    name = _printable(model.name, "model name", MAX_NAME)
    prov = _printable(provenance, "provenance", MAX_PROVENANCE)
    layer_names = [_printable(layer.name, f"layer {i} name", MAX_NAME) for i, layer in enumerate(model.layers)]
    for i, layer in enumerate(model.layers):
        for role, array in _tensors(layer):
            if array is not None and array.dtype != ROLE_DTYPE[role].newbyteorder("="):
                raise ArgumentError(f"layer {i} ({layer.name}): {ROLE_NAMES[role]} must be {ROLE_DTYPE[role].name}, got {array.dtype}")
    n_tensors = sum(array is not None for layer in model.layers for _, array in _tensors(layer))
    strings = name + b"\0" + prov + b"\0" + b"".join(n + b"\0" for n in layer_names)
    tables_end = HEADER_BYTES + LAYER_BYTES * len(model.layers) + TENSOR_BYTES * n_tensors
    meta_end = tables_end + len(strings)
    image_offset = meta_end + (-meta_end % align)
    data, offsets = layout(model, align=align, base=image_offset)
    blob = bytearray(data)
    image_size = len(blob) - image_offset
    if image_offset + image_size + TRAILER_BYTES > 0xFFFFFFFF:
        raise ArgumentError(f"the model's tensors take {image_size} bytes; a .etm blob holds less than 4 GiB")

    records, descriptors = [], []
    index = 0
    for i, (layer, off) in enumerate(zip(model.layers, offsets)):
        slots = []
        for (role, array), at in zip(_tensors(layer), (off.weight, off.bias, off.bn)):
            if array is None:
                slots.append(NO_INDEX)
                continue
            dims = list(array.shape) + [0] * (4 - array.ndim)
            descriptors.append(_TENSOR.pack(i, role, ROLE_FMT[role], array.ndim, *dims, at, array.nbytes))
            slots.append(index)
            index += 1
        s_in, s_out = layer.in_shape, layer.out_shape
        records.append(
            _LAYER.pack(
                int(layer.kind), int(layer.activation), int(layer.padding), layer.kernel, layer.alpha_shift,
                len(layer_names[i]), *slots,
                s_in.h, s_in.w, s_in.c, s_in.fmt, 0, s_out.h, s_out.w, s_out.c, s_out.fmt, 0, 0,
            )
        )
    meta = b"".join(records) + b"".join(descriptors) + strings
    blob[HEADER_BYTES:meta_end] = meta
    meta_crc = crc32(0, blob[HEADER_BYTES:image_offset])
    head = _HEADER.pack(
        MAGIC, VERSION, HEADER_BYTES, image_offset + image_size + TRAILER_BYTES, align, image_offset, image_size,
        len(model.layers), n_tensors, len(name), len(prov), bytes(24), meta_crc, 0,
    )
    blob[:HEADER_BYTES] = head[: HEADER_BYTES - 4] + struct.pack("<I", crc32(0, head[: HEADER_BYTES - 4]))
    blob += struct.pack("<I", crc32(0, blob))
    return bytes(blob)


def _corrupt(at: int, what: str) -> CorruptError:
    return CorruptError(f".etm byte {at}: {what}; {_FIX}")


def _read_string(blob: bytes, at: int, length: int, end: int, what: str) -> tuple[str, int]:
    for k in range(length):
        if at + k >= end or not 0x20 <= blob[at + k] <= 0x7E:
            raise _corrupt(at + k, f"{what} is not {length} printable ASCII characters")
    if at + length >= end or blob[at + length] != 0:
        raise _corrupt(at + length, f"{what} is not NUL-terminated")
    return blob[at : at + length].decode("ascii"), at + length + 1


def _enum(cls, value):
    try:
        return cls(value)
    except ValueError:
        return value  # check_model reports it as unsupported


def read_etm(data, *, flags: int = 0) -> EtmFile:
    """Parse and validate a .etm blob (twin of ``et_etm_parse``).

    ``data`` may be longer than the blob (the header says where it ends).
    ``flags=SKIP_BLOB_CRC`` skips the whole-blob CRC, as in the C.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentError(f"read_etm takes bytes, got {type(data).__name__}")
    if flags & ~SKIP_BLOB_CRC:
        raise ArgumentError(f"unknown flags {flags:#x}; the only flag is SKIP_BLOB_CRC ({SKIP_BLOB_CRC})")
    blob = bytes(data)
    size = len(blob)
    truncated = lambda need: CorruptError(  # noqa: E731
        f".etm blob truncated: {size} bytes, at least {need} needed; {_FIX}"
    )
    if size < 4:
        raise truncated(4)
    if blob[:4] != MAGIC:
        raise CorruptError(f"not a .etm blob: magic {blob[:4].hex()} is not {MAGIC.hex()} (0x89 'ETM')")
    if size < 6:
        raise truncated(6)
    version = struct.unpack_from("<H", blob, 4)[0]
    if version != VERSION:
        raise VersionError(
            f".etm format version {version}; this edgetrain reads version {VERSION}: "
            "re-export the model with this edgetrain, or upgrade edgetrain"
        )
    if size < HEADER_BYTES:
        raise truncated(HEADER_BYTES)
    (_, _, header_size, blob_size, align, image_offset, image_size, n_layers, n_tensors, name_len, prov_len,
     reserved, meta_crc, header_crc) = _HEADER.unpack_from(blob, 0)
    if crc32(0, blob[: HEADER_BYTES - 4]) != header_crc:
        raise _corrupt(60, "header CRC mismatch (the header is damaged)")
    if header_size != HEADER_BYTES:
        raise _corrupt(6, f"header size {header_size}, version 1 has {HEADER_BYTES}")
    if any(reserved):
        raise _corrupt(32, "reserved header bytes are not zero")
    if not MIN_ALIGN <= align <= MAX_ALIGN or align & (align - 1):
        raise _corrupt(12, f"alignment {align} is not a power of two in {MIN_ALIGN}..{MAX_ALIGN}")
    if not 1 <= n_layers <= MAX_LAYERS:
        raise _corrupt(24, f"{n_layers} layers; 1..{MAX_LAYERS} are allowed")
    if n_tensors > MAX_TENSORS:
        raise _corrupt(26, f"{n_tensors} tensors; at most {MAX_TENSORS} are allowed")
    if name_len > MAX_NAME:
        raise _corrupt(28, f"name length {name_len} exceeds {MAX_NAME}")
    if prov_len > MAX_PROVENANCE:
        raise _corrupt(30, f"provenance length {prov_len} exceeds {MAX_PROVENANCE}")
    tables_end = HEADER_BYTES + LAYER_BYTES * n_layers + TENSOR_BYTES * n_tensors
    if image_offset % align or image_offset < tables_end + name_len + prov_len + 2 + n_layers:
        raise _corrupt(16, f"image offset {image_offset} is misaligned or inside the metadata")
    if image_size % align or image_size > 0xFFFFFFFF - TRAILER_BYTES - image_offset:
        raise _corrupt(20, f"image size {image_size} is misaligned or too large")
    if blob_size != image_offset + image_size + TRAILER_BYTES:
        raise _corrupt(8, f"blob size {blob_size} is not image offset + image size + {TRAILER_BYTES}")
    if size < blob_size:
        raise truncated(blob_size)
    if crc32(0, blob[HEADER_BYTES:image_offset]) != meta_crc:
        raise _corrupt(56, "metadata CRC mismatch (layer table, descriptors or strings are damaged)")
    blob_crc = struct.unpack_from("<I", blob, blob_size - TRAILER_BYTES)[0]
    if not flags & SKIP_BLOB_CRC and crc32(0, blob[: blob_size - TRAILER_BYTES]) != blob_crc:
        raise _corrupt(blob_size - TRAILER_BYTES, "whole-blob CRC mismatch (tensor data are damaged)")

    name, at = _read_string(blob, tables_end, name_len, image_offset, "the model name")
    provenance, at = _read_string(blob, at, prov_len, image_offset, "the provenance string")
    records = [_LAYER.unpack_from(blob, HEADER_BYTES + LAYER_BYTES * i) for i in range(n_layers)]
    layer_names = []
    for i, rec in enumerate(records):
        if rec[5] > MAX_NAME:
            raise _corrupt(HEADER_BYTES + LAYER_BYTES * i + 5, f"layer {i} name length {rec[5]} exceeds {MAX_NAME}")
        text, at = _read_string(blob, at, rec[5], image_offset, f"layer {i}'s name")
        layer_names.append(text)
    if image_offset - at >= align:
        raise _corrupt(16, f"image offset {image_offset} leaves more padding than the alignment needs")
    if any(blob[at:image_offset]):
        raise _corrupt(at, "padding before the tensor image is not zero")

    image = blob[image_offset : image_offset + image_size]
    desc_base = HEADER_BYTES + LAYER_BYTES * n_layers
    layers, offsets = [], []
    next_tensor = 0
    for i, rec in enumerate(records):
        rec_at = HEADER_BYTES + LAYER_BYTES * i
        (kind, activation, padding, kernel, alpha_shift, _, *slots) = rec[:9]
        in_shape = Shape(rec[9], rec[10], rec[11], rec[12])
        out_shape = Shape(rec[14], rec[15], rec[16], rec[17])
        if rec[13] or rec[18]:
            raise _corrupt(rec_at + (19 if rec[13] else 27), f"layer {i}: reserved shape byte is not zero")
        if rec[19]:
            raise _corrupt(rec_at + 28, f"layer {i}: reserved bytes are not zero")
        arrays, where = {}, {}
        for role, index in zip((ROLE_WEIGHTS, ROLE_BIAS, ROLE_BN), slots):
            if index == NO_INDEX:
                arrays[role], where[role] = None, NO_TENSOR
                continue
            if index != next_tensor or index >= n_tensors:
                raise _corrupt(rec_at + 6 + 2 * (role - 1), f"layer {i}: {ROLE_NAMES[role]} tensor index {index}, expected {next_tensor} (tensors are listed in layer order)")
            next_tensor += 1
            d_at = desc_base + TENSOR_BYTES * index
            owner, d_role, fmt, ndim, *rest = _TENSOR.unpack_from(blob, d_at)
            dims, offset, nbytes = rest[:4], rest[4], rest[5]
            if owner != i:
                raise _corrupt(d_at, f"tensor {index} claims layer {owner} but layer {i} uses it")
            if d_role != role:
                raise _corrupt(d_at + 1, f"tensor {index} has role {d_role}, layer {i} uses it as {ROLE_NAMES[role]}")
            if fmt != ROLE_FMT[role]:
                raise UnsupportedError(
                    f".etm byte {d_at + 2}: layer {i} {ROLE_NAMES[role]} in format {fmt}; this build stores "
                    f"{ROLE_NAMES[role]} only as {fixed.FORMAT_NAMES[ROLE_FMT[role]]}"
                )
            if not 1 <= ndim <= 4:
                raise _corrupt(d_at + 3, f"tensor {index} has {ndim} dimensions; 1..4 are allowed")
            for k in range(4):
                if (dims[k] == 0) if k < ndim else (dims[k] != 0):
                    raise _corrupt(d_at + 4 + 2 * k, f"tensor {index} dimension {k} is {dims[k]}")
            elem = ROLE_DTYPE[role].itemsize
            count = int(np.prod(dims[:ndim], dtype=object))
            if nbytes % elem or count != nbytes // elem:
                raise _corrupt(d_at + 16, f"tensor {index} is {nbytes} bytes but its shape {tuple(dims[:ndim])} needs {count * elem}")
            if offset % align or offset > image_size or nbytes > image_size - offset:
                raise _corrupt(d_at + 12, f"tensor {index} at offset {offset} ({nbytes} bytes) is misaligned or outside the {image_size}-byte image")
            arrays[role] = np.frombuffer(image, ROLE_DTYPE[role], count, offset).reshape(dims[:ndim]).astype(ROLE_DTYPE[role].newbyteorder("="))
            where[role] = offset
        layers.append(
            Layer(
                _enum(LayerKind, kind), in_shape, out_shape, layer_names[i], _enum(Activation, activation),
                _enum(Padding, padding), kernel, alpha_shift, arrays[ROLE_WEIGHTS], arrays[ROLE_BIAS], arrays[ROLE_BN],
            )
        )
        offsets.append(TensorOffsets(where[ROLE_WEIGHTS], where[ROLE_BIAS], where[ROLE_BN]))
    if next_tensor != n_tensors:
        raise _corrupt(26, f"header lists {n_tensors} tensors but the layers use {next_tensor}")

    model = Model(name, layers)
    check_model(model, offsets, image_size)  # et_model_check's order: layers, their tensors' extents
    check_model(model)  # then each descriptor's shape against its layer
    ranges = sorted(
        (at, at + arr.nbytes, i)
        for i, (layer, off) in enumerate(zip(layers, offsets))
        for arr, at in ((layer.weights, off.weight), (layer.bias, off.bias), (layer.bn, off.bn))
        if arr is not None
    )
    for (a0, a1, la), (b0, b1, lb) in zip(ranges, ranges[1:]):
        if b0 < a1:
            raise _corrupt(desc_base, f"tensors of layers {la} and {lb} overlap in the image")
    return EtmFile(model, align, provenance, version, blob_size, image_offset, image_size, blob_crc, offsets)


def save(path, model: Model, *, align: int = 4, provenance: str = "") -> bytes:
    """Write ``model`` to ``path`` as .etm; returns the bytes written."""
    blob = write_etm(model, align=align, provenance=provenance)
    Path(path).write_bytes(blob)
    return blob


def load(path, *, flags: int = 0) -> EtmFile:
    """Read and validate a .etm file."""
    return read_etm(Path(path).read_bytes(), flags=flags)
