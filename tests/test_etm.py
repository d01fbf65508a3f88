"""The .etm blob: CRC-32, the Python writer/reader and the C parser agree, and
every damaged or malformed blob is rejected by both with the right error."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgetrain import ArgumentError, CorruptError, UnsupportedError, VersionError
from edgetrain.model import Model
from edgetrain.model.etm import SKIP_BLOB_CRC, read_etm, write_etm
from edgetrain.reference.crc import crc32 as twin_crc32
from etm_helpers import (
    CLASS_OF_STATUS,
    ET_ERR_ARG,
    ET_ERR_CORRUPT,
    ET_ERR_UNSUPPORTED,
    ET_ERR_VERSION,
    ET_OK,
    H_ALIGN,
    H_BLOB_SIZE,
    H_IMAGE_OFFSET,
    H_IMAGE_SIZE,
    H_N_LAYERS,
    H_N_TENSORS,
    H_NAME_LEN,
    HEADER,
    LAYER,
    TENSOR,
    CParse,
    conv_model,
    py_parse,
    py_table,
    reseal,
    u16,
    u32,
)
from test_model_check import tiny_model

# ---- CRC-32 -------------------------------------------------------------------


def c_crc(core, data: bytes, start: int = 0) -> int:
    ffi, lib = core
    crc = ffi.new("uint32_t *", start)
    assert lib.et_crc32(crc, ffi.from_buffer(data) if data else ffi.NULL, len(data)) == ET_OK
    return crc[0]


def test_crc32_check_value_from_the_literature(core):
    # The catalogue check value of CRC-32 (ISO-HDLC / IEEE 802.3): CRC of ASCII "123456789".
    assert c_crc(core, b"123456789") == 0xCBF43926
    assert twin_crc32(0, b"123456789") == 0xCBF43926
    assert core[1].ET_CRC32_CHECK == 0xCBF43926


def test_crc32_of_nothing_and_of_one_zero_byte(core):
    assert c_crc(core, b"") == 0 and twin_crc32(0, b"") == 0
    assert c_crc(core, b"\0") == 0xD202EF8D == twin_crc32(0, b"\0")


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc32_c_twin_and_zlib_agree_and_chain(core, twin, a, b):
    whole = zlib.crc32(a + b)
    twin.equal(c_crc(core, a + b), twin_crc32(0, a + b), "crc32")
    assert c_crc(core, a + b) == whole
    assert c_crc(core, b, c_crc(core, a)) == whole
    assert twin_crc32(twin_crc32(0, a), b) == whole


def test_crc32_checks_its_arguments(core):
    ffi, lib = core
    crc = ffi.new("uint32_t *", 1234)
    assert lib.et_crc32(ffi.NULL, ffi.new("uint8_t[]", 1), 1) == ET_ERR_ARG
    assert lib.et_crc32(crc, ffi.NULL, 1) == ET_ERR_ARG
    assert crc[0] == 1234
    assert lib.et_crc32(crc, ffi.NULL, 0) == ET_OK and crc[0] == 1234


# ---- round trip ---------------------------------------------------------------


def same_model(a: Model, b: Model) -> None:
    assert a.name == b.name and len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert (la.kind, la.in_shape, la.out_shape, la.name, la.activation, la.padding, la.kernel, la.alpha_shift) == (
            lb.kind, lb.in_shape, lb.out_shape, lb.name, lb.activation, lb.padding, lb.kernel, lb.alpha_shift)
        for ta, tb in ((la.weights, lb.weights), (la.bias, lb.bias), (la.bn, lb.bn)):
            assert (ta is None) == (tb is None)
            if ta is not None:
                assert ta.dtype == tb.dtype and ta.shape == tb.shape and np.array_equal(ta, tb)


@pytest.mark.parametrize("make", [tiny_model, conv_model])
@pytest.mark.parametrize("align", [2, 4, 32, 256, 4096])
def test_round_trip_python_and_c_agree(core, make, align):
    model = make()
    blob = write_etm(model, align=align, provenance="test provenance: seed 0")
    parsed = read_etm(blob)
    same_model(model, parsed.model)
    assert parsed.align == align and parsed.provenance == "test provenance: seed 0" and parsed.version == 1
    assert parsed.blob_size == len(blob) and parsed.image_offset % align == 0 and parsed.image_size % align == 0
    c = CParse(core, blob)
    assert c.status == ET_OK
    assert c.table == py_table(parsed)
    assert c.image_delta == parsed.image_offset
    ffi, lib = core
    info = c.info
    assert (info.version, info.n_layers, info.blob_size, info.align, info.image_offset, info.image_size) == (
        1, len(model.layers), len(blob), align, parsed.image_offset, parsed.image_size)
    assert info.blob_crc == zlib.crc32(blob[:-4]) == u32(blob, len(blob) - 4)
    assert ffi.string(info.name).decode() == model.name
    assert ffi.string(info.provenance).decode() == "test provenance: seed 0"
    name = ffi.new("char **")
    for i, layer in enumerate(model.layers):
        assert lib.et_etm_layer_name(info, i, name) == ET_OK and ffi.string(name[0]).decode() == layer.name
    assert lib.et_etm_layer_name(info, len(model.layers), name) == ET_ERR_ARG
    # The tensors the C addresses are the model's bytes, where they lie.
    for layer, row in zip(model.layers, c.table["layers"]):
        if layer.weights is not None:
            at = parsed.image_offset + row[7]
            assert blob[at : at + layer.weights.nbytes] == layer.weights.tobytes()
            assert row[7] % align == 0


def test_layout_of_the_tiny_model_follows_the_spec():
    blob = write_etm(tiny_model(), align=16, provenance="p")
    assert blob[:4] == b"\x89ETM" and u16(blob, 4) == 1 and u16(blob, 6) == 64
    assert u32(blob, H_ALIGN) == 16 and u16(blob, H_N_LAYERS) == 6 and u16(blob, H_N_TENSORS) == 5
    assert u16(blob, H_NAME_LEN) == 4 and u32(blob, H_BLOB_SIZE) == len(blob)
    # conv, pool, bn, flatten, fc, head: 64 + 6*32 + 5*20 = 356, then "tiny\0p\0" and six layer names.
    strings = b"tiny\0p\0conv\0pool\0bn\0flatten\0fc\0head\0"
    assert blob[356 : 356 + len(strings)] == strings
    assert u32(blob, H_IMAGE_OFFSET) == 400  # 356 + 36 = 392, rounded up to 16
    assert u32(blob, 60) == zlib.crc32(blob[:60]) and u32(blob, 56) == zlib.crc32(blob[64:400])
    first_layer = blob[64:96]
    assert first_layer[0] == 1 and first_layer[3] == 3 and u16(first_layer, 6) == 0 and u16(first_layer, 10) == 0xFFFF


def test_trailing_bytes_beyond_the_blob_are_ignored(core):
    blob = write_etm(tiny_model())
    padded = blob + b"\xff" * 100  # e.g. the erased rest of an NVM partition
    assert CParse(core, padded).status == ET_OK
    assert read_etm(padded).blob_size == len(blob)


# ---- every single-byte flip and every truncation -----------------------------


def expected_for_position(at: int):
    if at < 4:
        return ET_ERR_CORRUPT, CorruptError  # magic
    if at < 6:
        return ET_ERR_VERSION, VersionError  # version
    return ET_ERR_CORRUPT, CorruptError  # a CRC catches it


@pytest.mark.parametrize("make, align", [(tiny_model, 4), (conv_model, 16)])
def test_every_single_byte_flip_is_rejected_by_both(core, make, align):
    blob = write_etm(make(), align=align, provenance="flip")
    rng = np.random.default_rng(7)
    checked = 0
    for at in range(len(blob)):
        for mask in (0x01, 0x80, 0xFF, int(rng.integers(1, 256))):
            bad = bytearray(blob)
            bad[at] ^= mask
            status, exc = expected_for_position(at)
            c = CParse(core, bytes(bad))
            assert c.status == status, (at, mask, c.status)
            cls, _ = py_parse(bytes(bad))
            assert cls is exc, (at, mask, cls)
            checked += 1
    assert checked == 4 * len(blob)


@pytest.mark.parametrize("make", [tiny_model, conv_model])
def test_every_truncation_is_rejected_by_both(core, make):
    blob = write_etm(make(), align=8)
    for n in range(len(blob)):
        c = CParse(core, blob[:n])
        assert c.status == ET_ERR_CORRUPT, n
        assert c.bad == n or n >= 64, n  # before the header is whole, the offset is where the data ended
        cls, _ = py_parse(blob[:n])
        assert cls is CorruptError, n


def test_skip_blob_crc_trusts_the_tensors_but_still_checks_the_metadata(core):
    blob = write_etm(tiny_model(), align=4)
    image_offset = u32(blob, H_IMAGE_OFFSET)
    bad = bytearray(blob)
    bad[image_offset] ^= 0x01  # first conv weight
    assert CParse(core, bytes(bad)).status == ET_ERR_CORRUPT
    skipped = CParse(core, bytes(bad), flags=SKIP_BLOB_CRC)
    assert skipped.status == ET_OK
    assert skipped.buf[image_offset] == bad[image_offset]
    parsed = read_etm(bytes(bad), flags=SKIP_BLOB_CRC)
    assert int(parsed.model.layers[0].weights.flat[0]) == int(np.int8(blob[image_offset] ^ 0x01 if blob[image_offset] ^ 0x01 < 128 else (blob[image_offset] ^ 0x01) - 256))
    meta = bytearray(blob)
    meta[HEADER + 3] ^= 0x01  # first layer's kernel: the metadata CRC still catches it
    assert CParse(core, bytes(meta), flags=SKIP_BLOB_CRC).status == ET_ERR_CORRUPT
    with pytest.raises(CorruptError, match="metadata CRC"):
        read_etm(bytes(meta), flags=SKIP_BLOB_CRC)


# ---- crafted blobs: one fault each, CRCs made valid again --------------------

TINY_L, TINY_T = 6, 5  # tiny_model: conv w, conv b, bn, fc w, fc b
DESC = HEADER + LAYER * TINY_L


def rec(i: int) -> int:
    return HEADER + LAYER * i


def desc(j: int) -> int:
    return DESC + TENSOR * j


def put(fmt: str, at: int, value):
    def edit(b: bytearray):
        struct.pack_into(fmt, b, at, value)

    return edit


def strings_at() -> int:
    return DESC + TENSOR * TINY_T


CRAFTED = [
    # (what, edit on a tiny_model blob written with align 4 (image at 392, 72 bytes: conv w 0, conv b 20,
    #  bn 24, fc w 40, fc b 64), C status, Python class, C bad offset or None)
    ("bad magic", put("<B", 1, ord("X")), ET_ERR_CORRUPT, CorruptError, 0),
    ("version 2", put("<H", 4, 2), ET_ERR_VERSION, VersionError, 4),
    ("version 0", put("<H", 4, 0), ET_ERR_VERSION, VersionError, 4),
    ("header size 128", put("<H", 6, 128), ET_ERR_CORRUPT, CorruptError, 6),
    ("reserved header byte", put("<B", 40, 1), ET_ERR_CORRUPT, CorruptError, 32),
    ("alignment 3", put("<I", H_ALIGN, 3), ET_ERR_CORRUPT, CorruptError, H_ALIGN),
    ("alignment 1", put("<I", H_ALIGN, 1), ET_ERR_CORRUPT, CorruptError, H_ALIGN),
    ("alignment 2^17", put("<I", H_ALIGN, 1 << 17), ET_ERR_CORRUPT, CorruptError, H_ALIGN),
    ("no layers", put("<H", H_N_LAYERS, 0), ET_ERR_CORRUPT, CorruptError, H_N_LAYERS),
    ("33 layers", put("<H", H_N_LAYERS, 33), ET_ERR_CORRUPT, CorruptError, H_N_LAYERS),
    ("97 tensors", put("<H", H_N_TENSORS, 97), ET_ERR_CORRUPT, CorruptError, H_N_TENSORS),
    ("name too long", put("<H", H_NAME_LEN, 64), ET_ERR_CORRUPT, CorruptError, H_NAME_LEN),
    ("image offset misaligned", put("<I", H_IMAGE_OFFSET, 394), ET_ERR_CORRUPT, CorruptError, H_IMAGE_OFFSET),
    ("image offset inside the tables", put("<I", H_IMAGE_OFFSET, 64), ET_ERR_CORRUPT, CorruptError, H_IMAGE_OFFSET),
    ("image size not aligned", put("<I", H_IMAGE_SIZE, 70), ET_ERR_CORRUPT, CorruptError, H_IMAGE_SIZE),
    ("image size wraps around", put("<I", H_IMAGE_SIZE, 0xFFFFFFFC), ET_ERR_CORRUPT, CorruptError, H_IMAGE_SIZE),
    ("blob size disagrees", put("<I", H_BLOB_SIZE, 100), ET_ERR_CORRUPT, CorruptError, H_BLOB_SIZE),
    ("tensor count too large", put("<H", H_N_TENSORS, 6), ET_ERR_CORRUPT, CorruptError, None),
    ("control character in the name", put("<B", strings_at() + 1, 0x07), ET_ERR_CORRUPT, CorruptError, strings_at() + 1),
    ("name not terminated", put("<B", strings_at() + 4, ord("x")), ET_ERR_CORRUPT, CorruptError, strings_at() + 4),
    ("padding before the image not zero", put("<B", 391, 1), ET_ERR_CORRUPT, CorruptError, 391),
    ("layer name too long", put("<B", rec(2) + 5, 64), ET_ERR_CORRUPT, CorruptError, rec(2) + 5),
    ("reserved layer bytes", put("<B", rec(1) + 30, 9), ET_ERR_CORRUPT, CorruptError, rec(1) + 28),
    ("reserved shape byte", put("<B", rec(1) + 19, 1), ET_ERR_CORRUPT, CorruptError, rec(1) + 19),
    ("tensor index out of order", put("<H", rec(0) + 6, 1), ET_ERR_CORRUPT, CorruptError, rec(0) + 6),
    ("tensor index past the table", put("<H", rec(4) + 8, 40), ET_ERR_CORRUPT, CorruptError, rec(4) + 8),
    ("descriptor names another layer", put("<B", desc(3), 3), ET_ERR_CORRUPT, CorruptError, desc(3)),
    ("descriptor role differs", put("<B", desc(1) + 1, 3), ET_ERR_CORRUPT, CorruptError, desc(1) + 1),
    ("weights stored in another format", put("<B", desc(0) + 2, 1), ET_ERR_UNSUPPORTED, UnsupportedError, desc(0) + 2),
    ("unknown tensor format", put("<B", desc(0) + 2, 200), ET_ERR_UNSUPPORTED, UnsupportedError, desc(0) + 2),
    ("five dimensions", put("<B", desc(0) + 3, 5), ET_ERR_CORRUPT, CorruptError, desc(0) + 3),
    ("zero dimension", put("<H", desc(0) + 4, 0), ET_ERR_CORRUPT, CorruptError, desc(0) + 4),
    ("unused dimension set", put("<H", desc(1) + 6, 1), ET_ERR_CORRUPT, CorruptError, desc(1) + 6),
    ("byte count disagrees with the shape", put("<I", desc(1) + 16, 6), ET_ERR_CORRUPT, CorruptError, desc(1) + 16),
    ("tensor beyond the image", put("<I", desc(3) + 12, 52), ET_ERR_CORRUPT, CorruptError, desc(3) + 12),
    ("tensor misaligned", put("<I", desc(4) + 12, 66), ET_ERR_CORRUPT, CorruptError, desc(4) + 12),
    ("tensors overlap", put("<I", desc(3) + 12, 0), ET_ERR_CORRUPT, CorruptError, DESC),
    ("unsupported layer kind", put("<B", rec(1), 42), ET_ERR_UNSUPPORTED, UnsupportedError, rec(1)),
    ("unsupported kind in the last layer", put("<B", rec(5), 42), ET_ERR_UNSUPPORTED, UnsupportedError, rec(5)),
    ("unsupported activation", put("<B", rec(4) + 1, 3), ET_ERR_UNSUPPORTED, UnsupportedError, rec(4)),
    ("unsupported padding", put("<B", rec(0) + 2, 4), ET_ERR_UNSUPPORTED, UnsupportedError, rec(0)),
    ("unsupported activation format", put("<B", rec(1) + 26, 99), ET_ERR_UNSUPPORTED, UnsupportedError, rec(1)),
    ("shapes do not chain", put("<H", rec(1) + 16, 3), ET_ERR_CORRUPT, CorruptError, rec(1)),
    ("conv output size wrong", put("<H", rec(0) + 20, 5), ET_ERR_CORRUPT, CorruptError, rec(0)),
    ("alpha shift 16", put("<b", rec(4) + 4, 16), ET_ERR_CORRUPT, CorruptError, rec(4)),
    ("negative alpha shift", put("<b", rec(4) + 4, -1), ET_ERR_CORRUPT, CorruptError, rec(4)),
    ("head not last", put("<B", rec(5), 5), ET_ERR_CORRUPT, CorruptError, rec(5)),
]


def transposed_conv_dims(b: bytearray):
    # (2, 3, 3, 1) -> (1, 3, 3, 2): the same byte count, but not the shape the layer needs.
    struct.pack_into("<4H", b, desc(0) + 4, 1, 3, 3, 2)


def missing_bias(b: bytearray):
    # The conv's bias slot says "none" and the tensors renumber: the kind needs a bias.
    struct.pack_into("<H", b, rec(0) + 8, 0xFFFF)
    struct.pack_into("<H", b, rec(2) + 10, 1)
    struct.pack_into("<H", b, rec(4) + 6, 2)
    struct.pack_into("<H", b, rec(4) + 8, 3)
    struct.pack_into("<H", b, H_N_TENSORS, 4)
    # descriptors 2..4 move up by one; the fifth slot keeps stale bytes (now part of the strings area)
    b[desc(1) : desc(4)] = b[desc(2) : desc(5)]


CRAFTED += [
    ("descriptor shape is not the layer's", transposed_conv_dims, ET_ERR_CORRUPT, CorruptError, desc(0) + 4),
]


@pytest.mark.parametrize("what, edit, status, exc, bad", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_blobs_are_rejected_alike(core, what, edit, status, exc, bad):
    blob = bytearray(write_etm(tiny_model(), align=4))
    assert u32(blob, H_IMAGE_OFFSET) == 392 and u32(blob, H_IMAGE_SIZE) == 72 and u16(blob, H_N_TENSORS) == TINY_T
    edit(blob)
    blob = reseal(blob)
    c = CParse(core, blob)
    assert c.status == status, what
    if bad is not None:
        assert c.bad == bad, (what, c.bad)
    with pytest.raises(exc):
        read_etm(blob)


def test_a_layer_missing_a_tensor_it_needs_is_rejected(core):
    blob = bytearray(write_etm(tiny_model(), align=4))
    missing_bias(blob)
    blob = reseal(blob)
    assert CParse(core, blob).status == ET_ERR_CORRUPT
    with pytest.raises(CorruptError):
        read_etm(blob)


def test_python_messages_say_what_and_where():
    blob = bytearray(write_etm(tiny_model(), align=4))
    with pytest.raises(CorruptError, match=r"whole-blob CRC mismatch.*restore a known-good copy"):
        read_etm(bytes(blob[:-1]) + bytes([blob[-1] ^ 1]))
    with pytest.raises(VersionError, match=r"format version 7; this edgetrain reads version 1"):
        read_etm(bytes(blob[:4]) + b"\x07\x00" + bytes(blob[6:]))
    with pytest.raises(CorruptError, match=r"truncated: 100 bytes"):
        read_etm(bytes(blob[:100]))
    put("<I", desc(3) + 12, 0)(blob)
    with pytest.raises(CorruptError, match=r"tensors of layers 0 and 4 overlap"):
        read_etm(reseal(blob))


@given(data=st.data())
def test_random_edits_of_the_metadata_are_judged_alike(core, data):
    """Differential check: edit 1-3 metadata bytes, make the CRCs valid, and the C
    and Python readers must reach the same verdict (same class, same table)."""
    model = data.draw(st.sampled_from([tiny_model, conv_model]))()
    blob = bytearray(write_etm(model, align=data.draw(st.sampled_from([2, 4, 16]))))
    image_offset = u32(blob, H_IMAGE_OFFSET)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(4, image_offset - 1))
        if at in range(56, 64):
            continue
        blob[at] = data.draw(st.integers(0, 255))
    blob = reseal(blob)
    c = CParse(core, bytes(blob))
    cls, parsed = py_parse(bytes(blob))
    assert CLASS_OF_STATUS.get(c.status, "other") is cls, (c.status, cls)
    if parsed is not None:
        assert c.table == py_table(parsed)


# ---- arguments --------------------------------------------------------------


def test_c_parse_checks_arguments_and_writes_nothing_on_failure(core):
    ffi, lib = core
    blob = write_etm(tiny_model())
    buf = ffi.new("uint8_t[]", blob)
    model = ffi.new("et_model_t *")
    info = ffi.new("et_etm_info_t *")
    ffi.memmove(model, b"\xa5" * ffi.sizeof("et_model_t"), ffi.sizeof("et_model_t"))
    ffi.memmove(info, b"\x5a" * ffi.sizeof("et_etm_info_t"), ffi.sizeof("et_etm_info_t"))
    before = bytes(ffi.buffer(model)), bytes(ffi.buffer(info))
    bad = ffi.new("uint32_t *", 77)
    assert lib.et_etm_parse(ffi.NULL, len(blob), 0, model, info, bad) == ET_ERR_ARG
    assert lib.et_etm_parse(buf, len(blob), 0, ffi.NULL, info, bad) == ET_ERR_ARG
    assert lib.et_etm_parse(buf, len(blob), 2, model, info, bad) == ET_ERR_ARG
    assert bad[0] == 77
    assert lib.et_etm_parse(buf, len(blob) - 1, 0, model, info, bad) == ET_ERR_CORRUPT
    assert bad[0] == len(blob) - 1
    buf[len(blob) - 30] ^= 1
    assert lib.et_etm_parse(buf, len(blob), 0, model, info, ffi.NULL) == ET_ERR_CORRUPT
    assert (bytes(ffi.buffer(model)), bytes(ffi.buffer(info))) == before
    buf[len(blob) - 30] ^= 1
    assert lib.et_etm_parse(buf, len(blob), 0, model, ffi.NULL, ffi.NULL) == ET_OK


def test_writer_rejects_what_it_cannot_store():
    model = tiny_model()
    with pytest.raises(ArgumentError, match="power of two"):
        write_etm(model, align=3)
    with pytest.raises(ArgumentError, match="power of two"):
        write_etm(model, align=1 << 17)
    with pytest.raises(ArgumentError, match="non-ASCII"):
        write_etm(model, provenance="caf\u00e9")
    with pytest.raises(ArgumentError, match="at most 4095"):
        write_etm(model, provenance="x" * 4096)
    model.layers[0].name = "c" * 64
    with pytest.raises(ArgumentError, match="layer 0 name"):
        write_etm(model)
    model = tiny_model()
    model.layers[0].weights = model.layers[0].weights.astype(np.int16)
    with pytest.raises(ArgumentError, match="weights must be int8"):
        write_etm(model)
    model = tiny_model()
    model.layers[1].in_shape = model.layers[0].in_shape
    with pytest.raises(CorruptError, match="layer 1"):
        write_etm(model)
    model = tiny_model()
    model.layers[1].kind = 42
    with pytest.raises(UnsupportedError):
        write_etm(model)


def test_reader_rejects_non_bytes_and_unknown_flags():
    with pytest.raises(ArgumentError):
        read_etm("not bytes")
    with pytest.raises(ArgumentError):
        read_etm(write_etm(tiny_model()), flags=4)


# ---- fuzzer corpus: seeds and crash reproducers --------------------------------

FUZZ = Path(__file__).resolve().parent / "fuzz"
FUZZ_INPUTS = sorted(p for d in ("seeds", "regressions") for p in (FUZZ / d).glob("*") if p.is_file() and not p.name.startswith(".") and p.suffix != ".txt")


def test_fuzz_corpus_is_present():
    assert (FUZZ / "fuzz_etm.c").is_file()
    assert any(p.parent.name == "seeds" for p in FUZZ_INPUTS)
    assert (FUZZ / "seeds" / "PROVENANCE.txt").read_text().startswith("# provenance: tools/gen_fuzz_seeds.py")


@pytest.mark.parametrize("path", FUZZ_INPUTS, ids=[f"{p.parent.name}/{p.name}" for p in FUZZ_INPUTS])
def test_fuzz_inputs_replay_alike_in_c_and_python(core, path):
    """Every checked-in fuzz input, raw and with its CRCs resealed: C and Python reach the same verdict
    (under `make test-asan` the C runs with AddressSanitizer and UBSan)."""
    data = path.read_bytes()
    for blob in (data, reseal(data)):
        c = CParse(core, blob)
        cls, parsed = py_parse(blob)
        assert CLASS_OF_STATUS.get(c.status, "other") is cls, (c.status, cls)
        if parsed is not None:
            assert c.table == py_table(parsed)
    if path.parent.name == "seeds":
        assert CParse(core, data).status == ET_OK


# ---- random valid models: writer, reader and C agree -------------------------


@st.composite
def random_models(draw):
    """Valid models of random structure: conv blocks (valid/same, optional pool, optional BN after
    the ReLU), flatten, 0-2 hidden dense layers, logits, head; random tensor values and names."""
    from edgetrain.model import Activation, Layer, LayerKind, Padding, Shape
    from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS, FMT_BN_OUT, FMT_INPUT

    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    i8 = lambda *s: rng.integers(-128, 128, s, dtype=np.int8)  # noqa: E731
    i16 = lambda *s: rng.integers(-32768, 32768, s, dtype=np.int16)  # noqa: E731
    name = lambda: draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12))  # noqa: E731
    shape = Shape(draw(st.integers(3, 12)), draw(st.integers(3, 12)), draw(st.integers(1, 3)), FMT_INPUT)
    layers = []
    for _ in range(draw(st.integers(0, 3))):
        k = draw(st.sampled_from([1, 3, 5]))
        same = draw(st.booleans())
        if not same and (shape.h < k or shape.w < k):
            continue
        c = draw(st.integers(1, 5))
        out = Shape(shape.h if same else shape.h - k + 1, shape.w if same else shape.w - k + 1, c, FMT_ACT)
        layers.append(Layer(LayerKind.CONV2D, shape, out, name(), Activation.RELU, Padding.SAME if same else Padding.VALID, k,
                            draw(st.integers(0, 15)), i8(c, k, k, shape.c), i16(c)))
        shape = out
        if draw(st.booleans()) and shape.h >= 2 and shape.w >= 2:
            out = Shape(shape.h // 2, shape.w // 2, shape.c, shape.fmt)
            layers.append(Layer(LayerKind.MAXPOOL2, shape, out, name()))
            shape = out
        if draw(st.booleans()):
            out = Shape(shape.h, shape.w, shape.c, FMT_BN_OUT)
            layers.append(Layer(LayerKind.BATCHNORM, shape, out, name(), bn=i16(4, shape.c)))
            shape = out
    if (shape.h, shape.w) != (1, 1):
        out = Shape(1, 1, shape.h * shape.w * shape.c, shape.fmt)
        layers.append(Layer(LayerKind.FLATTEN, shape, out, name()))
        shape = out
    for _ in range(draw(st.integers(0, 2))):
        n = draw(st.integers(1, 9))
        out = Shape(1, 1, n, FMT_ACT)
        layers.append(Layer(LayerKind.DENSE, shape, out, name(), Activation.RELU, alpha_shift=draw(st.integers(0, 15)), weights=i8(n, shape.c), bias=i16(n)))
        shape = out
    n = draw(st.integers(2, 10))
    out = Shape(1, 1, n, FMT_BIAS)
    layers.append(Layer(LayerKind.DENSE, shape, out, name(), Activation.NONE, alpha_shift=draw(st.integers(0, 15)), weights=i8(n, shape.c), bias=i16(n)))
    layers.append(Layer(LayerKind.SOFTMAX_CE, out, out, name()))
    return Model(name(), layers)


@given(model=random_models(), align=st.sampled_from([2, 4, 8, 64, 512]), provenance=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_random_models_round_trip_and_c_agrees(core, twin, model, align, provenance):
    blob = write_etm(model, align=align, provenance=provenance)
    parsed = read_etm(blob)
    same_model(model, parsed.model)
    assert parsed.provenance == provenance and parsed.image_offset % align == 0
    c = CParse(core, blob)
    assert c.status == ET_OK
    twin.equal(c.table, py_table(parsed), "et_etm_parse vs read_etm table")
    ffi = core[0]
    assert ffi.string(c.info.name).decode() == model.name and ffi.string(c.info.provenance).decode() == provenance
