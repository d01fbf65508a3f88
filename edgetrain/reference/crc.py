"""NumPy-side twin of csrc/src/crc.c: CRC-32 (reflected 0xEDB88320, init and final XOR 0xFFFFFFFF).

The C works eight bytes at a time from eight 256-entry tables (slice-by-8; four
with ``-DET_CRC_SLICE=4``); this twin works a byte at a time from a 256-entry
table that it derives bit by bit at import. The check value of "123456789" is 0xCBF43926 (``CHECK``).
"""
from __future__ import annotations

POLY = 0xEDB88320
CHECK = 0xCBF43926


def _byte_table() -> tuple[int, ...]:
    table = []
    for value in range(256):
        reg = value
        for _ in range(8):
            reg = (reg >> 1) ^ (POLY if reg & 1 else 0)
        table.append(reg)
    return tuple(table)


_TABLE = _byte_table()


def crc32(crc: int, data: bytes | bytearray | memoryview) -> int:
    """Twin of ``et_crc32``: the running CRC ``crc`` (0 to start) extended by ``data``."""
    reg = (crc ^ 0xFFFFFFFF) & 0xFFFFFFFF
    table = _TABLE
    for byte in bytes(data):
        reg = (reg >> 8) ^ table[(reg ^ byte) & 0xFF]
    return reg ^ 0xFFFFFFFF


def _mulmod(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial, both polynomials in the reflected order (bit 31 is x^0)."""
    p = 0
    for i in range(32):
        if a & (0x80000000 >> i):
            p ^= b
        b = (b >> 1) ^ (POLY if b & 1 else 0)
    return p


def x8_powers() -> tuple[int, ...]:
    """x^(8 * 2^j) mod P for j = 0..31, from x^8 by squaring (the C's et_crc32_x8pow table)."""
    out = [0x00800000]  # x^8
    for _ in range(31):
        out.append(_mulmod(out[-1], out[-1]))
    return tuple(out)


_X8POW = x8_powers()


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """Twin of ``et_crc32_combine``: crc(a then b) from crc(a), crc(b) and len(b)."""
    v, j = crc1 & 0xFFFFFFFF, 0
    while len2:
        if len2 & 1:
            v = _mulmod(_X8POW[j], v)
        len2 >>= 1
        j += 1
    return v ^ (crc2 & 0xFFFFFFFF)


def crc32_xor(crc: int, a: bytes, b: bytes) -> int:
    """Twin of ``et_crc32_xor``: ``crc`` extended by the bytes a[i] XOR b[i]."""
    return crc32(crc, bytes(x ^ y for x, y in zip(bytes(a), bytes(b), strict=True)))
