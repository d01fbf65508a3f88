"""NumPy-side twin of csrc/src/crc.c: CRC-32 (reflected 0xEDB88320, init and final XOR 0xFFFFFFFF).

The C works four bytes at a time from four 256-entry tables (slice-by-4); this
twin works a byte at a time from a 256-entry table that it derives bit by bit at
import. The
check value of "123456789" is 0xCBF43926 (``CHECK``).
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
