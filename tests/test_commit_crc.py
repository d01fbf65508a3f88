"""The commit derives the new bank's CRC from the active bank's and the CRC of what changed
(et_crc32_combine / et_crc32_xor, tested in tests/test_crc_combine.py) and compares only the chunks
that can differ.
These tests fail when a derived record CRC differs from a direct CRC of the bank's cells, or when a
skipped chunk leaves the target bank out of date."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrain.core import ffi, lib
from edgetrain.errors import NvmIOError, WornCellsError
from firmware_sim.commit import TrainingArea
from firmware_sim.models import sim_small, sim_tiny
from firmware_sim.nvm import NvmRegion, technology
from firmware_sim.verify import synthetic_update

ET_OK = 0


# ---- derived record CRCs in the commit ----------------------------------------------------------


def make(tech="rram", model=None, seed=0, ring_slots=8):
    model = model or sim_small()
    t = technology(tech) if isinstance(tech, str) else tech
    size = 128 * 1024 if t.is_flash else 64 * 1024
    region = NvmRegion(t, size, seed=seed)
    return model, region, TrainingArea(model, region, ring_slots=ring_slots)


def head_record_crc_matches_cells(area, region, tensor) -> bool:
    """The newest record's bank CRC equals zlib's CRC of that bank's cells, and names the active bank."""
    info = area.info(tensor)
    off = info["ring_offset"] + info["head"] * info["record_bytes"]
    rec = bytes(region.mem[off:off + 16])
    bank = rec[6]
    assert "AB"[bank] == info["active"]
    start = info["bank_offset"][bank]
    return int.from_bytes(rec[8:12], "little") == zlib.crc32(bytes(region.mem[start:start + info["bytes"]]))


def sparse_rows(rng, w, n_rows, density=0.05):
    new = w.copy()
    flat = new.reshape(n_rows, -1)
    rows = sorted(set(rng.integers(0, n_rows, size=rng.integers(1, max(2, n_rows // 3))).tolist()))
    for r in rows:
        mask = rng.random(flat[r].shape) < density
        mask[rng.integers(0, flat[r].size)] = True
        flat[r][mask] = rng.integers(-128, 128, int(mask.sum()), dtype=np.int8)
    return new, [(r, 1) for r in rows]


@pytest.mark.parametrize("tech", ["rram", "pcm", "flash"])
def test_derived_crc_equals_direct_crc_across_many_sparse_commits_and_ring_wraps(tech):
    model, region, area = make(tech, ring_slots=3)
    rng = np.random.default_rng(11)
    expect = {layer: model.layers[layer].weights.copy() for layer in area.layers}
    for k in range(40):  # far more commits than ring slots: the ring wraps many times
        layer = area.layers[k % len(area.layers)]
        n_rows = expect[layer].shape[0]
        new, rows = sparse_rows(rng, expect[layer], n_rows)
        area.commit(layer, new, rows=rows)
        expect[layer] = new
        assert np.array_equal(area.active(layer), new), f"commit {k}"
        assert head_record_crc_matches_cells(area, region, layer), f"commit {k}"
        if k % 13 == 12:
            area.open()  # a reboot forgets which chunks are clean: the next commit compares everything
            assert area.stats()["crc_fallbacks"] == 0
    area.open()
    assert area.stats()["crc_fallbacks"] == 0
    for layer in area.layers:
        assert np.array_equal(area.active(layer), expect[layer])


@pytest.mark.parametrize("tech", ["rram", "flash"])
def test_rows_changed_by_the_previous_commit_reach_the_older_bank(tech):
    """The target bank is two versions old: rows the previous commit changed must be brought up to date
    although this commit does not give them."""
    model, region, area = make(tech)
    fc = area.layers[-1]
    w0 = area.active(fc).copy()
    w1 = w0.copy()
    w1[0] += 1
    area.commit(fc, w1, rows=[(0, 1)])  # from the factory image: bank A
    w2 = w1.copy()
    w2[2] -= 3
    area.commit(fc, w2, rows=[(2, 1)])  # bank B, written whole
    w3 = w2.copy()
    w3[5] ^= 0x11
    area.commit(fc, w3, rows=[(5, 1)])  # bank A holds w1: rows 2 (last commit) and 5 (this one) differ
    assert np.array_equal(area.active(fc), w3)
    assert head_record_crc_matches_cells(area, region, fc)
    w4 = w3.copy()
    w4[9] += 7
    area.commit(fc, w4, rows=[(9, 1)])  # bank B holds w2: rows 5 and 9 differ
    assert np.array_equal(area.active(fc), w4)
    assert head_record_crc_matches_cells(area, region, fc)
    area.open()
    assert np.array_equal(area.active(fc), w4) and area.stats()["crc_fallbacks"] == 0


def test_a_commit_of_the_same_rows_changes_nothing_but_the_record():
    model, region, area = make("rram")
    fc = area.layers[-1]
    w = synthetic_update(np.random.default_rng(3), area.active(fc).copy())
    area.commit(fc, w)
    area.commit(fc, w)
    before = region.totals()["bytes_programmed"]
    area.commit(fc, w, rows=[(1, 2), (6, 1)])  # rows given with their current values
    assert region.totals()["bytes_programmed"] - before == area.info(fc)["record_bytes"]
    assert head_record_crc_matches_cells(area, region, fc)


def test_an_abandoned_commit_makes_the_next_one_compare_the_whole_bank():
    """After a power loss mid-commit the target bank holds a mix: the next commit must not skip chunks."""
    model, region, area = make("rram")
    fc = area.layers[-1]
    rng = np.random.default_rng(4)
    w = area.active(fc).copy()
    for _ in range(3):
        w, rows = sparse_rows(rng, w, w.shape[0], density=0.5)
        area.commit(fc, w, rows=rows)
    half = rng.integers(-128, 128, w.shape, dtype=np.int8)
    lib_abort_rows = [(r, 1) for r in range(w.shape[0])]
    region.arm_power_loss(3)
    with pytest.raises(NvmIOError):
        area.commit(fc, half, rows=lib_abort_rows)
    region.arm_power_loss(0)
    region.reboot()
    area.open()
    assert np.array_equal(area.active(fc), w)
    # without the reboot the handle is the one that saw the failure; both must complete a clean commit
    w2 = w.copy()
    w2[3] += 1
    area.commit(fc, w2, rows=[(3, 1)])
    assert np.array_equal(area.active(fc), w2)
    assert head_record_crc_matches_cells(area, region, fc)


def test_a_failed_commit_without_reboot_leaves_the_handle_comparing_everything():
    model, region, area = make("rram")
    fc = area.layers[-1]
    rng = np.random.default_rng(5)
    w = area.active(fc).copy()
    for _ in range(3):
        w, rows = sparse_rows(rng, w, w.shape[0], density=0.5)
        area.commit(fc, w, rows=rows)
    junk = rng.integers(-128, 128, w.shape, dtype=np.int8)
    assert lib.et_commit_begin(area.c, fc) == ET_OK
    flat = np.ascontiguousarray(junk.reshape(junk.shape[0], -1))
    assert lib.et_commit_rows(area.c, fc, 0, flat.shape[0], ffi.from_buffer("int8_t[]", flat.view(np.int8))) == ET_OK
    assert lib.et_commit_abort(area.c, fc) == ET_OK  # the target bank now holds junk
    w2 = w.copy()
    w2[1] -= 1
    area.commit(fc, w2, rows=[(1, 1)])
    assert np.array_equal(area.active(fc), w2)
    assert head_record_crc_matches_cells(area, region, fc)
    area.open()
    assert np.array_equal(area.active(fc), w2) and area.stats()["crc_fallbacks"] == 0


@pytest.mark.parametrize("tech", ["rram", "flash"])
def test_worn_cells_record_crc_describes_what_the_cells_hold(tech):
    t = technology(tech).replace(endurance=4 if tech == "rram" else 3, endurance_sigma=0.0)
    model, region, area = make(t, model=sim_tiny())
    fc = area.layers[-1]
    rng = np.random.default_rng(8)
    w = model.layers[fc].weights
    worn_seen = 0
    for k in range(40):
        n_rows = w.shape[0]
        new, rows = sparse_rows(rng, w, n_rows, density=0.4)
        try:
            area.commit(fc, new, rows=rows)
        except WornCellsError:  # the record ring itself wore out: the old version stays active
            assert k > 10
            break
        w = new
        assert head_record_crc_matches_cells(area, region, fc), f"commit {k}"
        worn_seen = area.stats()["worn_reports"]
        # after a worn commit and after the commits that follow it, the active tensor is the cells' content
        info = area.info(fc)
        bank = info["bank_offset"]["AB".index(info["active"])]
        assert np.array_equal(area.active(fc).reshape(-1), region.mem[bank:bank + w.size].view(np.int8))
    assert worn_seen > 0 and region.totals()["cells_worn"] > 0
    area.open()
    assert area.stats()["crc_fallbacks"] == 0


@pytest.mark.parametrize("tech", ["rram", "flash"])
def test_cells_changed_behind_the_commit_are_carried_over_after_a_refresh(tech):
    """Drift changes the active cells without the HAL; after et_commit_refresh the next commit carries
    them over (as a whole-bank commit always did) and its record CRC describes the cells."""
    model, region, area = make(tech)
    fc = area.layers[-1]
    rng = np.random.default_rng(9)
    w = area.active(fc).copy()
    for _ in range(3):
        w, rows = sparse_rows(rng, w, w.shape[0])
        area.commit(fc, w, rows=rows)
    info = area.info(fc)
    bank = info["bank_offset"]["AB".index(info["active"])]
    flat = region.mem[bank:bank + w.size].view(np.int8)
    hit = [1, w.size // 2, w.size - 1]
    flat[hit] ^= 0x21  # "drift": a few active cells change behind the protocol's back
    drifted = area.active(fc).copy()
    assert lib.et_commit_refresh(area.c, fc) == ET_OK
    new = drifted.copy()
    new[0] += 1
    area.commit(fc, new, rows=[(0, 1)])
    assert np.array_equal(area.active(fc), new)  # the drifted cells outside row 0 came along
    assert head_record_crc_matches_cells(area, region, fc)
    area.open()
    assert np.array_equal(area.active(fc), new) and area.stats()["crc_fallbacks"] == 0


def test_refresh_arguments_and_state():
    model, region, area = make("rram")
    fc = area.layers[-1]
    assert lib.et_commit_refresh(ffi.NULL, fc) == lib.ET_ERR_ARG
    assert lib.et_commit_refresh(area.c, 0x7F) == lib.ET_ERR_ARG
    assert lib.et_commit_refresh(area.c, fc) == ET_OK  # factory image active: nothing to re-read
    assert lib.et_commit_begin(area.c, fc) == ET_OK
    assert lib.et_commit_refresh(area.c, fc) == lib.ET_ERR_STATE
    assert lib.et_commit_abort(area.c, fc) == ET_OK


# ---- the compare and the CRC in one pass (et_program_diff_crc) ---------------------------------


def unit_runs(old: np.ndarray, new: np.ndarray, pu: int, cuts: list[int]) -> list[tuple[int, int]]:
    """(start, end) of the maximal runs of program units in which old and new differ, split at `cuts`
    (the edges of the commit's flushes): the program calls a commit must make, in order."""
    differs = (old != new).reshape(-1, pu).any(axis=1)
    runs, start = [], None
    for u, d in enumerate(differs):
        if u * pu in cuts and start is not None:
            runs.append((start, u * pu))
            start = None
        if d and start is None:
            start = u * pu
        elif not d and start is not None:
            runs.append((start, u * pu))
            start = None
    if start is not None:
        runs.append((start, len(differs) * pu))
    return runs


def sparse_runs_of_bytes(rng, flat: np.ndarray, count: int, max_len: int) -> np.ndarray:
    """flat with `count` runs of 1..max_len changed bytes at random places (runs may touch or cross words)."""
    out = flat.copy()
    for _ in range(count):
        at = int(rng.integers(0, out.size))
        n = int(rng.integers(1, max_len + 1))
        seg = out[at:at + n]
        seg ^= rng.integers(1, 256, seg.size).astype(np.uint8).view(np.int8)  # every byte of the run changes
    return out


@settings(max_examples=40, deadline=None)
@given(pu=st.sampled_from([1, 2, 4, 8, 16]), seed=st.integers(0, 2**32 - 1), count=st.integers(0, 60),
       max_len=st.integers(1, 24), stage_mul=st.sampled_from([1, 3]))
def test_the_one_pass_compare_programs_exactly_the_differing_unit_runs_and_derives_the_crc(pu, seed, count, max_len,
                                                                                          stage_mul):
    """In-place NVM of program unit pu: after a reboot (nothing known of the target bank) a commit of the
    whole tensor programs one call per maximal run of differing units (the target bank holds the
    version before last, so differences come from two updates), and the record CRC derived from the
    difference with the active bank is zlib's CRC of the new bank's cells. Then sparse row commits
    (chunks known equal) keep the CRC exact."""
    tech = technology("rram").replace(program_unit=pu)
    model = sim_small()
    region = NvmRegion(tech, 64 * 1024, seed=1)
    from firmware_sim.commit import commit_stage_bytes

    stage = commit_stage_bytes(region) * stage_mul
    area = TrainingArea(model, region, ring_slots=4, stage_bytes=stage)
    layer = max(area.layers, key=lambda t: model.layers[t].weights.size)
    rng = np.random.default_rng(seed)
    shape = model.layers[layer].weights.shape
    w1 = sparse_runs_of_bytes(rng, area.active(layer).reshape(-1), 20, 8).reshape(shape)
    area.commit(layer, w1)  # factory image -> A
    w2 = sparse_runs_of_bytes(rng, w1.reshape(-1), count, max_len).reshape(shape)
    area.commit(layer, w2)  # -> B
    area.open()
    new = sparse_runs_of_bytes(rng, w2.reshape(-1), count, max_len).reshape(shape)
    info = area.info(layer)
    target = info["bank_offset"]["BA".index(info["active"])]
    size = info["bytes"]
    cells = region.mem[target:target + size].view(np.int8).copy()  # holds w1
    direct = size - size % stage
    want = unit_runs(np.pad(cells, (0, -size % pu)), np.pad(new.reshape(-1), (0, -size % pu)), pu,
                     [direct] if direct < size else [])
    before = area.stats()
    area.commit(layer, new)
    after = area.stats()
    rec = info["record_bytes"]
    assert after["program_ops"] - before["program_ops"] == len(want) + 1  # the runs, then the record
    assert after["bytes_programmed"] - before["bytes_programmed"] == sum(e - s for s, e in want) + rec
    assert np.array_equal(area.active(layer), new)
    assert head_record_crc_matches_cells(area, region, layer)
    for _ in range(4):  # sparse rows: chunks known equal are skipped, given rows compared in the one pass
        new, rows = sparse_rows(rng, new, shape[0], density=0.02)
        area.commit(layer, new, rows=rows)
        assert np.array_equal(area.active(layer), new)
        assert head_record_crc_matches_cells(area, region, layer)
    area.open()
    assert np.array_equal(area.active(layer), new) and area.stats()["crc_fallbacks"] == 0
