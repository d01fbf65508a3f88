"""The plain-memory NVM HAL (csrc/src/nvm_ram.c)."""
from __future__ import annotations

ET_OK, ET_ERR_ARG = 0, -1


def make(ffi, lib, size=32):
    nvm = ffi.new("et_nvm_t *")
    stats = ffi.new("et_nvm_ram_stats_t *", {"program_calls": 99})
    mem = ffi.new("uint8_t[]", size)
    assert lib.et_nvm_ram_init(nvm, mem, size, stats) == ET_OK
    return nvm, stats, mem


def test_program_writes_and_counts_changed_bytes(core):
    ffi, lib = core
    nvm, stats, mem = make(ffi, lib)
    assert stats.program_calls == 0  # zeroed by init
    assert nvm.program(nvm, 4, b"\x00\x07\x07", 3) == ET_OK  # first byte unchanged (already 0)
    assert bytes(ffi.buffer(mem))[4:7] == b"\x00\x07\x07"
    assert (stats.program_calls, stats.bytes_programmed, stats.bytes_changed) == (1, 3, 2)
    assert nvm.base[5] == 7  # the read view is the same memory


def test_out_of_range_program_is_rejected_and_writes_nothing(core):
    ffi, lib = core
    nvm, stats, mem = make(ffi, lib, size=8)
    assert nvm.program(nvm, 6, b"abc", 3) == ET_ERR_ARG
    assert nvm.program(nvm, 2**32 - 1, b"a", 1) == ET_ERR_ARG
    assert bytes(ffi.buffer(mem)) == bytes(8)
    assert stats.program_calls == 0


def test_erase_fills_with_erased_value(core):
    ffi, lib = core
    nvm, stats, mem = make(ffi, lib, size=8)
    assert nvm.erase(nvm, 2, 4) == ET_OK
    assert bytes(ffi.buffer(mem)) == b"\x00\x00\xff\xff\xff\xff\x00\x00"
    assert stats.erase_calls == 1
    assert nvm.erase(nvm, 6, 4) == ET_ERR_ARG


def test_init_rejects_null_and_empty(core):
    ffi, lib = core
    nvm = ffi.new("et_nvm_t *")
    stats = ffi.new("et_nvm_ram_stats_t *")
    mem = ffi.new("uint8_t[]", 4)
    assert lib.et_nvm_ram_init(nvm, mem, 0, stats) == ET_ERR_ARG
    assert lib.et_nvm_ram_init(nvm, ffi.NULL, 4, stats) == ET_ERR_ARG
    assert lib.et_nvm_ram_init(ffi.NULL, mem, 4, stats) == ET_ERR_ARG
