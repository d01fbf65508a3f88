"""CRC-32 combining (csrc/src/crc.c: et_crc32_combine, et_crc32_xor) against zlib's direct CRC and
the twin (edgetrain/reference/crc.py), which derives the C's table of x^(8 * 2^j) mod P by squaring."""
from __future__ import annotations

import zlib

from hypothesis import given, settings, strategies as st

from edgetrain.core import ffi, lib
from edgetrain.reference import crc as twin

ET_OK = 0


def c_combine(crc1: int, crc2: int, len2: int) -> int:
    out = ffi.new("uint32_t *", crc1)
    assert lib.et_crc32_combine(out, crc2, len2) == ET_OK
    return out[0]


def c_xor(crc: int, a: bytes, b: bytes) -> int:
    out = ffi.new("uint32_t *", crc)
    assert lib.et_crc32_xor(out, ffi.from_buffer(a) if a else ffi.NULL, ffi.from_buffer(b) if b else ffi.NULL,
                            len(a)) == ET_OK
    return out[0]


@settings(max_examples=300, deadline=None)
@given(a=st.binary(max_size=300), b=st.binary(max_size=3000))
def test_combine_equals_the_crc_of_the_concatenation(a, b):
    assert c_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    assert twin.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@settings(max_examples=40, deadline=None)
@given(a=st.binary(max_size=64), n=st.integers(0, 200_000))
def test_combine_with_zero_crc_shifts_over_zero_bytes(a, n):
    """crc2 = 0 with len2 = n is not crc(n zero bytes): the register is carried over n zeros, and
    combining with the real crc of the zeros gives the CRC of a followed by them."""
    zeros = bytes(n)
    assert c_combine(zlib.crc32(a), zlib.crc32(zeros), n) == zlib.crc32(a + zeros)
    assert c_combine(zlib.crc32(a), 0, n) == zlib.crc32(a + zeros) ^ zlib.crc32(zeros)


@settings(max_examples=60, deadline=None)
@given(crc=st.integers(0, 2**32 - 1), n=st.integers(0, 2**32 - 1))
def test_combine_matches_the_twin_for_every_length_bit(crc, n):
    """Lengths up to 2^32 - 1 use every entry of the C's table of x^(8 * 2^j); the twin derives them."""
    assert c_combine(crc, 0x1234ABCD, n) == twin.crc32_combine(crc, 0x1234ABCD, n)
    for j in range(32):
        assert c_combine(crc, 0, 1 << j) == twin.crc32_combine(crc, 0, 1 << j)


def test_the_power_table_follows_from_x8_by_squaring():
    p = twin.x8_powers()
    assert p[0] == 0x00800000 and p[1] == 0x00008000  # x^8, x^16 in the reflected order
    assert p[2] == twin.POLY  # x^32 mod P is the polynomial's low part
    # carrying the polynomial 1 (bit 31) over 2^j bytes gives the C's table entry j
    assert [c_combine(0x80000000, 0, 1 << j) for j in range(32)] == list(p)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(0, 400), start=st.integers(0, 2**32 - 1))
def test_crc_of_a_difference_equals_the_crc_of_the_xored_bytes(data, n, start):
    a = data.draw(st.binary(min_size=n, max_size=n))
    b = data.draw(st.binary(min_size=n, max_size=n))
    x = bytes(p ^ q for p, q in zip(a, b))
    assert c_xor(start, a, b) == zlib.crc32(x, start) == twin.crc32_xor(start, a, b)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), length=st.integers(1, 5000), runs=st.integers(0, 6))
def test_sparse_difference_gives_the_new_crc(data, length, runs):
    """The commit's identity: crc(new) = crc(old) XOR (register of new XOR old), built run by run."""
    old = data.draw(st.binary(min_size=length, max_size=length))
    new = bytearray(old)
    cuts = sorted(data.draw(st.lists(st.integers(0, length), min_size=2 * runs, max_size=2 * runs)))
    reg, pos = 0, 0
    for k in range(runs):
        lo, hi = cuts[2 * k], cuts[2 * k + 1]
        new[lo:hi] = data.draw(st.binary(min_size=hi - lo, max_size=hi - lo))
        reg = c_combine(reg, 0, lo - pos)
        reg = ~c_xor(~reg & 0xFFFFFFFF, bytes(new[lo:hi]), old[lo:hi]) & 0xFFFFFFFF
        pos = hi
    reg = c_combine(reg, 0, length - pos)
    assert reg ^ zlib.crc32(old) == zlib.crc32(bytes(new))


def test_crc_helpers_reject_null():
    out = ffi.new("uint32_t *", 0)
    assert lib.et_crc32_combine(ffi.NULL, 0, 1) == lib.ET_ERR_ARG
    assert lib.et_crc32_xor(ffi.NULL, ffi.NULL, ffi.NULL, 0) == lib.ET_ERR_ARG
    buf = ffi.new("uint8_t[]", 4)
    assert lib.et_crc32_xor(out, ffi.NULL, buf, 4) == lib.ET_ERR_ARG
    assert lib.et_crc32_xor(out, buf, ffi.NULL, 4) == lib.ET_ERR_ARG
    assert out[0] == 0
    assert lib.et_crc32_xor(out, ffi.NULL, ffi.NULL, 0) == ET_OK and out[0] == 0
