"""The emulator's accounting HAL (csrc/host/nvm_sim.c): writes, flips, energy,
flash erase-before-write, power loss per device operation, wear-out."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgetrain import ArgumentError
from firmware_sim.nvm import NvmRegion, draw_endurance, endurance_values, technology

ET_OK, ET_ERR_ARG, ET_ERR_IO, ET_ERR_WORN = 0, -1, -6, -9


def popcount(a: np.ndarray) -> int:
    return int(np.unpackbits(np.asarray(a, np.uint8)).sum())


def region(name="rram", size=64, seed=0, **overrides):
    tech = technology(name)
    if overrides:
        tech = tech.replace(**overrides)
    return NvmRegion(tech, size, seed=seed)


def test_inplace_program_counts_units_flips_energy_and_time():
    r = region("rram", 64)
    old = r.mem.copy()
    data = bytes(range(1, 9))
    assert r.program_status(8, data) == ET_OK
    assert bytes(r.mem[8:16]) == data and bytes(r.nvm.base[8:16]) == data
    expect_writes = np.zeros(64, np.uint32)
    expect_writes[8:16] = 1
    assert np.array_equal(r.writes, expect_writes)
    t = r.totals()
    flips = popcount(old[8:16] ^ np.frombuffer(data, np.uint8))
    assert t["bits_flipped"] == flips
    per_byte = np.unpackbits((old[8:16] ^ np.frombuffer(data, np.uint8))[:, None], axis=1).sum(axis=1)
    assert np.array_equal(r.flips[8:16], per_byte) and r.flips[:8].sum() == 0 and r.flips[16:].sum() == 0
    assert t["bytes_programmed"] == 8 and t["program_calls"] == 1 and t["device_ops"] == 2
    assert t["energy_fj"] == 8 * 8 * 10_900  # 10.9 pJ/bit, every bit of every programmed byte
    assert t["busy_ns"] == 2 * 10


def test_flip_energy_basis_charges_changed_bits_only():
    r = region("rram", 16, energy_basis="flip")
    r.program(0, b"\x01\x00\x00\x03")
    assert r.totals()["energy_fj"] == 3 * 10_900


@pytest.mark.parametrize("offset, length", [(2, 4), (0, 3), (60, 8), (2**32 - 4, 4), (0, 0)])
def test_bad_program_is_rejected_and_changes_nothing(offset, length):
    r = region("rram", 64)
    r.mem[:] = 7
    before = r.mem.copy()
    assert r.program_status(offset, b"\xaa" * length) == ET_ERR_ARG
    assert np.array_equal(r.mem, before) and r.writes.sum() == 0 and r.totals()["program_calls"] == 0


def test_flash_programs_only_clear_bits_and_needs_erase_to_set_them():
    r = region("flash", 4096)
    assert (r.mem == 0xFF).all()
    assert r.program_status(0, b"\x0f" * 8) == ET_OK
    assert r.program_status(0, b"\x0e" * 8) == ET_OK  # clearing more bits in place is allowed (NOR)
    assert (r.mem[:8] == 0x0E).all()
    before = r.mem.copy()
    assert r.program_status(0, b"\xf0" * 8) == ET_ERR_ARG  # 0 -> 1 without an erase: refused
    assert np.array_equal(r.mem, before)
    assert r.totals()["rejected_programs"] == 1
    assert r.erase_status(0, 2048) == ET_OK
    assert (r.mem[:2048] == 0xFF).all() and r.wear[0] == 1 and r.wear[1] == 0
    assert r.program_status(0, b"\xf0" * 8) == ET_OK
    t = r.totals()
    assert t["erase_calls"] == 1 and t["bytes_erased"] == 2048
    assert t["energy_fj"] == 3 * 64 * 100_000 + 330 * 10**9


@pytest.mark.parametrize("offset, length", [(8, 2048), (0, 1024), (2048, 4096), (0, 0)])
def test_flash_erase_must_be_page_aligned(offset, length):
    r = region("flash", 4096)
    assert r.erase_status(offset, length) == ET_ERR_ARG
    assert r.totals()["erase_calls"] == 0


def test_inplace_region_has_no_erase():
    r = region("mram", 64)
    assert r.erase_status(0, 4) == ET_ERR_ARG


def test_power_loss_tears_one_unit_and_blocks_until_reboot():
    for seed in range(40):
        r = region("pcm", 64, seed=seed)
        old = np.arange(64, dtype=np.uint8)
        r.mem[:] = old
        new = bytes((0xFF - i) & 0xFF for i in range(32))
        r.arm_power_loss(3)  # the third program unit (bytes 8..11) is torn
        assert r.program_status(0, new) == ET_ERR_IO
        got = r.mem[:32]
        newa = np.frombuffer(new, np.uint8)
        assert np.array_equal(got[:8], newa[:8])
        assert np.array_equal(got[12:], old[12:32])
        torn = got[8:12]
        cuts = [c for c in range(5) if np.array_equal(torn[:c], newa[8:8 + c]) and np.array_equal(torn[c + 1:], old[8 + c + 1:12])]
        assert cuts, (seed, torn)
        c = cuts[0]
        if c < 4:  # the byte at the cut mixes old and new bits, nothing else
            assert torn[c] & ~(old[8 + c] | newa[8 + c]) == 0 and ~torn[c] & (old[8 + c] & newa[8 + c]) == 0
        assert not r.powered
        assert r.program_status(40, b"abcd") == ET_ERR_IO
        r.reboot()
        assert r.program_status(40, b"abcd") == ET_OK
        assert r.totals()["power_losses"] == 1


def test_flash_power_loss_only_clears_bits_toward_the_target():
    torn_seen = 0
    for seed in range(30):
        r = region("flash", 2048, seed=seed)
        rng = np.random.default_rng(seed)
        before = rng.integers(0, 256, 16, dtype=np.uint8)
        r.program(16, before.tobytes())
        target = before & rng.integers(0, 256, 16, dtype=np.uint8)
        r.arm_power_loss(2)
        assert r.program_status(16, target.tobytes()) == ET_ERR_IO
        got = r.mem[16:32]
        assert (got[:8] == target[:8]).all()  # first unit landed
        assert ((got & target) == target).all()  # torn unit: no bit below the target ...
        assert (got & ~before == 0).all()  # ... and none set that was clear (flash only clears)
        torn_seen += int(not np.array_equal(got[8:], target[8:]) and not np.array_equal(got[8:], before[8:]))
    assert torn_seen > 0


def test_flash_erase_power_loss_leaves_bits_between_old_and_erased():
    r = region("flash", 4096, seed=3)
    r.program(0, bytes(2048))
    r.arm_power_loss(1)
    assert r.erase_status(0, 2048) == ET_ERR_IO
    page = r.mem[:2048]
    assert 0 < popcount(page) < 2048 * 8  # partly erased


def test_wearout_stuck_last_is_reported_and_kept():
    r = region("rram", 16, endurance=3, endurance_sigma=0.0)
    assert (r.endurance == 3).all()
    for value in (1, 2, 3):
        assert r.program_status(0, bytes([value] * 4)) == ET_OK
    assert r.program_status(0, b"\x09\x09\x09\x09") == ET_ERR_WORN  # fourth write: cells give out
    assert (r.mem[:4] == 3).all() and (r.stuck[:4] == 0xFF).all()
    assert r.program_status(0, b"\x05\x05\x05\x05") == ET_ERR_WORN
    assert (r.mem[:4] == 3).all()
    assert r.program_status(0, b"\x03\x03\x03\x03") == ET_OK  # asking for the stuck value verifies
    t = r.totals()
    assert t["cells_worn"] == 4 and t["worn_reports"] == 2 and r.writes[0] == 6


def test_wearout_stuck_pattern():
    r = region("mram", 8, endurance=1, endurance_sigma=0.0, wearout="stuck_pattern", stuck_pattern=0x5A)
    r.program(4, b"\x11\x11\x11\x11")
    assert r.program_status(4, b"\x22\x22\x22\x22") == ET_ERR_WORN
    assert (r.mem[4:8] == 0x5A).all()


def test_flash_page_wears_out_on_erase():
    r = region("flash", 4096, endurance=2, endurance_sigma=0.0)
    r.program(0, bytes(8))
    assert r.erase_status(0, 2048) == ET_OK
    r.program(0, bytes(8))
    assert r.erase_status(0, 2048) == ET_OK
    r.program(0, bytes(8))
    assert r.erase_status(0, 2048) == ET_ERR_WORN  # third erase: the page gives out
    assert (r.mem[:8] == 0).all() and (r.stuck[:2048] == 0xFF).all()
    assert r.program_status(0, b"\xff" * 8) == ET_ERR_WORN  # stuck bits: reported as wear, not misuse
    assert r.totals()["cells_worn"] == 2048


def test_endurance_draw_is_seeded_lognormal():
    tech = technology("rram")
    a = draw_endurance(tech, 20000, seed=5)
    assert np.array_equal(a, draw_endurance(tech, 20000, seed=5))
    assert not np.array_equal(a, draw_endurance(tech, 20000, seed=6))
    logs = np.log10(endurance_values(a).astype(np.float64))  # the counts behind the 16-bit codes
    assert abs(np.median(logs) - 6.0) < 0.02
    assert abs(logs.std() - 0.25) < 0.02


def test_init_rejects_bad_configs(core):
    ffi, lib = core
    good = technology("flash").sim_config(4096)
    for change in ({"program_unit": 3}, {"erase_unit": 12}, {"size": 3000}, {"cell": 7}, {"wear": 5}):
        cfg = ffi.new("et_nvm_sim_config_t *", {**good, **change})
        assert lib.et_nvm_sim_wear_units(cfg, ffi.new("uint32_t *")) == ET_ERR_ARG, change
    inplace = technology("rram").sim_config(64)
    cfg = ffi.new("et_nvm_sim_config_t *", {**inplace, "erase_unit": 16})
    assert lib.et_nvm_sim_wear_units(cfg, ffi.new("uint32_t *")) == ET_ERR_ARG
    sim, nvm, totals = ffi.new("et_nvm_sim_t *"), ffi.new("et_nvm_t *"), ffi.new("et_nvm_sim_totals_t *")
    cfg = ffi.new("et_nvm_sim_config_t *", inplace)
    buf = ffi.new("et_nvm_sim_buffers_t *")
    assert lib.et_nvm_sim_init(sim, nvm, cfg, buf, totals) == ET_ERR_ARG  # NULL buffers
    assert lib.et_nvm_sim_set_powerloss(ffi.NULL, 1) == ET_ERR_ARG


def test_region_size_must_fit_the_technology():
    with pytest.raises(ArgumentError, match="multiple of 2048 bytes"):
        NvmRegion(technology("flash"), 3000)
    with pytest.raises(ArgumentError, match="endurance"):
        technology("rram").replace(endurance=0)
    with pytest.raises(ArgumentError, match="cannot be overridden"):
        technology("rram").replace(cell="flash")
    assert math.isclose(region("rram", 8).energy_j, 0.0)


def test_endurance_codes_decode_alike_in_c_and_python_and_round_to_within_1_in_4096():
    from edgetrain.core import lib
    from firmware_sim.nvm import ENDURANCE_NEVER, endurance_codes

    codes = np.arange(65536, dtype=np.uint16)
    c_values = np.array([lib.et_nvm_sim_endurance(int(c)) for c in codes], dtype=np.uint64)
    assert (endurance_values(codes) == c_values).all()
    assert (c_values[:2048] == np.arange(2048)).all()  # small counts are exact
    assert c_values[(22 << 11) - 1] == 4095 << 20 and (c_values[22 << 11:] == 2**32 - 1).all()
    valid = codes[codes < (22 << 11)]
    assert (endurance_codes(endurance_values(valid)) == valid).all()
    counts = np.random.default_rng(3).integers(1, 4095 << 20, 100_000, dtype=np.uint64)
    back = endurance_values(endurance_codes(counts)).astype(np.float64)
    assert np.max(np.abs(back - counts) / counts) <= 1 / 4096
    assert endurance_codes(np.array([2**32 - 1, (4095 << 20) + (1 << 19)])).tolist() == [ENDURANCE_NEVER] * 2


def test_a_region_keeps_two_bytes_of_endurance_per_wear_unit():
    r = NvmRegion(technology("rram"), 4096, seed=0)
    assert r.endurance.dtype == np.uint16 and r.endurance.nbytes == 2 * r.wear_units
