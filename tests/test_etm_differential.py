"""The C validator is the reference for what a valid .etm blob is: random field-wise edits of valid
blobs, resealed with correct CRCs so that they reach the checks behind them, must get the same
verdict from the C parser (et_etm_parse) and the Python reader (read_etm), and the same table when
both accept.

EDGETRAIN_ETM_EDITS sets the number of edited blobs (default 10,000, what CI runs).
"""
from __future__ import annotations

import os
import struct
from collections import Counter

import numpy as np
import pytest

from edgetrain import CorruptError
from edgetrain.model import Activation, Layer, LayerKind, Model, Shape
from edgetrain.model.etm import read_etm, write_etm
from edgetrain.reference.fixed import FMT_BIAS, FMT_INPUT
from etm_helpers import (
    CLASS_OF_STATUS,
    ET_ERR_CORRUPT,
    ET_OK,
    H_ALIGN,
    H_BLOB_SIZE,
    H_IMAGE_OFFSET,
    H_IMAGE_SIZE,
    H_N_LAYERS,
    H_N_TENSORS,
    H_NAME_LEN,
    H_PROV_LEN,
    HEADER,
    LAYER,
    TENSOR,
    CParse,
    conv_model,
    py_parse,
    py_table,
    reseal,
    u16,
)
from test_model_check import tiny_model

EDITS = int(os.environ.get("EDGETRAIN_ETM_EDITS", "10000"))

# Fields an edit may change: (offset, width in bytes); layer and descriptor fields relative to
# their record (docs/model-format.md).
HEADER_FIELDS = [(H_BLOB_SIZE, 4), (H_ALIGN, 4), (H_IMAGE_OFFSET, 4), (H_IMAGE_SIZE, 4), (H_N_LAYERS, 2),
                 (H_N_TENSORS, 2), (H_NAME_LEN, 2), (H_PROV_LEN, 2)]
LAYER_FIELDS = [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 2), (8, 2), (10, 2),
                (12, 2), (14, 2), (16, 2), (18, 1), (20, 2), (22, 2), (24, 2), (26, 1)]
DESC_FIELDS = [(0, 1), (1, 1), (2, 1), (3, 1), (4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4)]
SHAPE_DIMS = (0, 2, 4)  # h, w, c within a shape


def flatten_first() -> Model:
    """flatten 1x1x10 -> dense 10 -> 2 -> head: a flatten whose input shape nothing else constrains."""
    rng = np.random.default_rng(3)
    return Model("flat", [
        Layer(LayerKind.FLATTEN, Shape(1, 1, 10, FMT_INPUT), Shape(1, 1, 10, FMT_INPUT), "f"),
        Layer(LayerKind.DENSE, Shape(1, 1, 10, FMT_INPUT), Shape(1, 1, 2, FMT_BIAS), "d", Activation.NONE,
              weights=rng.integers(-128, 128, (2, 10), dtype=np.int8), bias=rng.integers(-99, 99, 2, dtype=np.int16)),
        Layer(LayerKind.SOFTMAX_CE, Shape(1, 1, 2, FMT_BIAS), Shape(1, 1, 2, FMT_BIAS), "head"),
    ])


BASES = [write_etm(make(), align=align) for make in (tiny_model, conv_model, flatten_first) for align in (2, 4, 16)]


def _value(rng, width: int, old: int) -> int:
    """A new value for a field: uniform, small, a boundary, near the old one, or a scaled old one."""
    top = (1 << (8 * width)) - 1
    pick = rng.integers(7)
    if pick == 0:
        return int(rng.integers(0, top + 1, dtype=np.uint64))
    if pick == 1:
        return int(rng.integers(0, 5))
    if pick == 2:
        return int(rng.choice([top, top - 1, top >> 1, (top >> 1) + 1, 0xFF & top, 0x100 & top, 0xFFFF & top]))
    if pick == 3:
        return (old + int(rng.choice([-2, -1, 1, 2]))) & top
    if pick == 4:
        return (old * int(rng.integers(2, 300))) & top
    if pick == 5:
        return (old << int(rng.integers(1, 8 * width))) & top
    return old ^ (1 << int(rng.integers(8 * width)))


def _fields(blob: bytes) -> list[tuple[int, int]]:
    n_layers, n_tensors = min(u16(blob, H_N_LAYERS), 32), min(u16(blob, H_N_TENSORS), 96)
    found = list(HEADER_FIELDS)
    for i in range(n_layers):
        found += [(HEADER + LAYER * i + at, w) for at, w in LAYER_FIELDS]
    base = HEADER + LAYER * n_layers
    for j in range(n_tensors):
        found += [(base + TENSOR * j + at, w) for at, w in DESC_FIELDS]
    return [(at, w) for at, w in found if at + w <= len(blob)]


def _chain_edit(rng, b: bytearray) -> None:
    """Give one layer's output and the next layer's input the same new dimension (so that the edit
    gets past the shape chain and reaches the per-kind checks and the size products)."""
    n_layers = min(u16(b, H_N_LAYERS), (len(b) - HEADER) // LAYER)
    if not 1 <= n_layers <= 32:
        return
    i = int(rng.integers(n_layers))
    dim = int(rng.choice(SHAPE_DIMS))
    value = _value(rng, 2, u16(b, HEADER + LAYER * i + 20 + dim))
    struct.pack_into("<H", b, HEADER + LAYER * i + 20 + dim, value)
    if i + 1 < n_layers:
        struct.pack_into("<H", b, HEADER + LAYER * (i + 1) + 12 + dim, value)
    if rng.integers(2):  # and the layer's own input, for kinds whose output follows the input
        struct.pack_into("<H", b, HEADER + LAYER * i + 12 + dim, value)


def edited(rng, blob: bytes) -> bytes:
    b = bytearray(blob)
    for _ in range(int(rng.integers(1, 4))):
        if rng.integers(4) == 0:
            _chain_edit(rng, b)
            continue
        fields = _fields(bytes(b))
        at, width = fields[int(rng.integers(len(fields)))]
        old = int.from_bytes(b[at:at + width], "little")
        b[at:at + width] = _value(rng, width, old).to_bytes(width, "little")
    return reseal(b)


def verdicts(core, blob: bytes):
    c = CParse(core, blob)
    cls, parsed = py_parse(blob)
    return c, cls, parsed


def test_c_and_python_readers_agree_on_random_resealed_edits(core):
    rng = np.random.default_rng(20261206)
    outcomes = Counter()
    disagree = []
    for k in range(EDITS):
        blob = edited(rng, BASES[k % len(BASES)])
        c, cls, parsed = verdicts(core, blob)
        c_cls = CLASS_OF_STATUS.get(c.status, "other")
        outcomes[c.status] += 1
        if c_cls is not cls or (parsed is not None and c.table != py_table(parsed)):
            disagree.append((k, c.status, cls, blob.hex()))
    assert not disagree, f"{len(disagree)} of {EDITS} edits judged differently, first: {disagree[:3]}"
    # The edits must reach the checks behind the CRCs: both verdicts well represented.
    assert outcomes[ET_OK] >= EDITS // 50 and outcomes[ET_ERR_CORRUPT] >= EDITS // 4, outcomes


def test_a_flatten_whose_size_product_wraps_32_bits_is_rejected(core):
    """34586 * 251 * 1979 = 10 (mod 2^32): a 32-bit product let C accept this flatten as 1x1x10."""
    blob = bytearray(write_etm(flatten_first(), align=4))
    for at, value in ((12, 34586), (14, 251), (16, 1979)):
        struct.pack_into("<H", blob, HEADER + at, value)
    blob = reseal(blob)
    c, cls, _ = verdicts(core, blob)
    assert c.status == ET_ERR_CORRUPT and c.bad == HEADER
    assert cls is CorruptError
    with pytest.raises(CorruptError, match="flatten of 34586x251x1979"):
        read_etm(blob)
