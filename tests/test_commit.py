"""The atomic weight commit (csrc/src/commit.c) on the emulated NVM: recovery,
write accounting against an independent count, record format, argument
checks, wear-out, and power loss at every device operation."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from edgetrain import ArgumentError, NoMemoryError, NvmIOError, StateError
from edgetrain.core import ffi, lib
from firmware_sim.commit import TrainingArea, area_size
from firmware_sim.memory_map import MemoryMap, presets
from firmware_sim.models import load_model, sim_small, sim_tiny
from firmware_sim.nvm import NvmRegion, technology
from firmware_sim.verify import AtomicCommit, run_schedule, synthetic_update

TECHS = ["rram", "mram", "pcm", "flash"]


def make(tech="rram", size=None, model=None, seed=0, **kw):
    model = model or sim_tiny()
    t = technology(tech) if isinstance(tech, str) else tech
    size = size or (64 * 1024 if t.is_flash else 32 * 1024)
    region = NvmRegion(t, size, seed=seed)
    return model, region, TrainingArea(model, region, **kw)


def popcount(a) -> int:
    return int(np.unpackbits(np.asarray(a, np.uint8)).sum())


@pytest.mark.parametrize("tech", TECHS)
def test_factory_is_active_until_the_first_commit_then_banks_alternate(tech):
    model, region, area = make(tech)
    fc = area.layers[-1]
    assert area.info(fc)["active"] == "factory"
    assert np.array_equal(area.active(fc), model.layers[fc].weights)
    rng = np.random.default_rng(1)
    w = model.layers[fc].weights
    seen = []
    for _ in range(4):
        w = synthetic_update(rng, w)
        area.commit(fc, w)
        assert np.array_equal(area.active(fc), w)
        seen.append(area.info(fc)["active"])
        area.open()  # reboot: recovery from NVM alone gives the same weights
        assert np.array_equal(area.active(fc), w)
    assert seen == ["A", "B", "A", "B"]
    assert area.info(fc)["seq"] == 4
    other = area.layers[0]
    assert np.array_equal(area.active(other), model.layers[other].weights)


def _expected_inplace(before, after, pu):
    """Independent count: program units whose content changed were programmed once, byte by byte."""
    changed_units = (before != after).reshape(-1, pu).any(axis=1)
    return np.repeat(changed_units, pu).astype(np.uint32)


@pytest.mark.parametrize("tech", ["rram", "mram", "pcm"])
def test_inplace_write_counts_equal_snapshot_diffs(tech):
    model, region, area = make(tech, model=sim_small())
    rng = np.random.default_rng(2)
    current = {layer: model.layers[layer].weights for layer in area.layers}
    pu = region.tech.program_unit
    for k in range(12):
        layer = area.layers[k % len(area.layers)]
        current[layer] = synthetic_update(rng, current[layer], density=0.1)
        mem0, writes0, flips0, t0 = region.mem.copy(), region.writes.copy(), region.flips.copy(), region.totals()
        area.commit(layer, current[layer])
        mem1, t1 = region.mem.copy(), region.totals()
        per_byte = np.unpackbits((mem0 ^ mem1)[:, None], axis=1).sum(axis=1)
        assert np.array_equal(region.flips - flips0, per_byte), f"commit {k}"
        expect = _expected_inplace(mem0, mem1, pu)
        assert np.array_equal(region.writes - writes0, expect), f"commit {k}"
        assert t1["bits_flipped"] - t0["bits_flipped"] == popcount(mem0 ^ mem1)
        assert t1["bytes_programmed"] - t0["bytes_programmed"] == int(expect.sum())
        assert t1["energy_fj"] - t0["energy_fj"] == int(expect.sum()) * 8 * round(region.tech.program_energy * 1000)
    for layer, w in current.items():
        assert np.array_equal(area.active(layer), w)


def test_flash_write_and_erase_counts_equal_snapshot_diffs():
    model, region, area = make("flash", size=128 * 1024, model=sim_small())
    rng = np.random.default_rng(3)
    current = {layer: model.layers[layer].weights for layer in area.layers}
    eu, pu = region.tech.erase_unit, region.tech.program_unit
    for k in range(10):
        layer = area.layers[k % len(area.layers)]
        current[layer] = synthetic_update(rng, current[layer], density=0.1)
        mem0, writes0, wear0, t0 = region.mem.copy(), region.writes.copy(), region.wear.copy(), region.totals()
        area.commit(layer, current[layer])
        mem1 = region.mem.copy()
        exp_writes = np.zeros(region.size, np.uint32)
        exp_erases = np.zeros(region.wear_units, np.uint32)
        flips = 0
        for page in range(region.size // eu):
            s = slice(page * eu, (page + 1) * eu)
            a, b = mem0[s], mem1[s]
            if np.array_equal(a, b):
                continue
            if ((a & b) == b).all():  # reachable by clearing bits: programmed in place
                start = a
            else:  # erased first, then the units that are not blank programmed
                exp_erases[page] = 1
                start = np.full(eu, 0xFF, np.uint8)
                flips += popcount(a ^ start)
            units = (start != b).reshape(-1, pu).any(axis=1)
            exp_writes[s] = np.repeat(units, pu)
            flips += popcount(start ^ b)
        assert np.array_equal(region.writes - writes0, exp_writes), f"commit {k}"
        assert np.array_equal(region.wear - wear0, exp_erases), f"commit {k}"
        assert region.totals()["bits_flipped"] - t0["bits_flipped"] == flips
        assert int(region.flips.sum()) == region.totals()["bits_flipped"]
    assert region.totals()["rejected_programs"] == 0  # the protocol always erases before it must
    assert region.totals()["erase_calls"] > 0


def test_record_format_matches_an_independent_decoder():
    model, region, area = make("rram")
    fc = area.layers[-1]
    rng = np.random.default_rng(4)
    w = model.layers[fc].weights
    for expect_seq in (1, 2, 3):
        w = synthetic_update(rng, w)
        area.commit(fc, w)
        info = area.info(fc)
        off = info["ring_offset"] + info["head"] * info["record_bytes"]
        rec = bytes(region.mem[off:off + 16])
        seq, layer, bank, magic = int.from_bytes(rec[0:4], "little"), int.from_bytes(rec[4:6], "little"), rec[6], rec[7]
        assert (seq, layer, magic) == (expect_seq, fc, 0xE7)
        bank_off = info["bank_offset"][bank]
        assert int.from_bytes(rec[8:12], "little") == zlib.crc32(bytes(region.mem[bank_off:bank_off + w.size]))
        assert np.array_equal(region.mem[bank_off:bank_off + w.size].view(np.int8), w.reshape(-1))
        assert "AB"[bank] == info["active"]
        # the record CRC covers a layout tag and the first 12 bytes: flipping any byte invalidates it
        saved = region.mem[off:off + 16].copy()
        region.mem[off + 9] ^= 0x40
        area.open()
        assert area.info(fc)["seq"] == expect_seq - 1
        region.mem[off:off + 16] = saved
        area.open()
        assert area.info(fc)["seq"] == expect_seq


def test_parameter_tensors_commit_like_weights():
    """Biases and batch-norm blocks are tensors of their own (id PARAMS | layer), stored as little-endian int16."""
    from edgetrain.model.presets import preset
    from firmware_sim.commit import PARAMS

    model = preset("mcu-cnn", 3)
    region = NvmRegion(technology("rram"), 256 * 1024)
    area = TrainingArea(model, region)
    bn = next(i for i, layer in enumerate(model.layers) if layer.bn is not None)
    fc = max(area.layers)
    assert PARAMS | bn in area.tensors and PARAMS | fc in area.tensors and bn not in area.tensors
    rng = np.random.default_rng(9)
    for tensor, factory in ((PARAMS | fc, model.layers[fc].bias), (PARAMS | bn, model.layers[bn].bn)):
        assert area.info(tensor)["active"] == "factory" and np.array_equal(area.active(tensor), factory)
        new = rng.integers(-2**15, 2**15, factory.shape, dtype=np.int16)
        area.commit(tensor, new)
        info = area.info(tensor)
        off = info["ring_offset"] + info["head"] * info["record_bytes"]
        rec = bytes(region.mem[off:off + 16])
        bank_off = info["bank_offset"][rec[6]]
        stored = bytes(region.mem[bank_off:bank_off + info["bytes"]])
        assert int.from_bytes(rec[4:6], "little") == tensor and rec[7] == 0xE7
        assert stored == new.astype("<i2").tobytes() and int.from_bytes(rec[8:12], "little") == zlib.crc32(stored)
        area.open()
        assert np.array_equal(area.active(tensor), new)
    with pytest.raises(ArgumentError, match="int16 of shape"):
        area.commit(PARAMS | fc, np.zeros(10, np.int8))
    with pytest.raises(ArgumentError, match="no parameter tensor"):
        area.active(PARAMS | 1)  # a pooling layer


def test_a_commit_of_unchanged_weights_programs_only_the_record():
    model, region, area = make("rram")
    fc = area.layers[-1]
    w = synthetic_update(np.random.default_rng(5), model.layers[fc].weights)
    area.commit(fc, w)  # bank A
    area.commit(fc, w)  # bank B: first write of B
    area.commit(fc, w)  # bank A already holds w
    before = region.totals()
    area.commit(fc, w)  # bank B already holds w
    delta = region.totals()["bytes_programmed"] - before["bytes_programmed"]
    assert delta == area.info(fc)["record_bytes"]


def test_rows_stream_in_order_and_skipped_rows_keep_their_values():
    model, region, area = make("pcm")
    fc = area.layers[-1]
    old = area.active(fc).copy()
    new = old.copy()
    new[2] += 1
    new[7] -= 1
    area.commit(fc, new, rows=[(2, 1), (7, 1)])
    assert np.array_equal(area.active(fc), new)
    other = new.copy()
    other[5] = 0
    with pytest.raises(ArgumentError):
        area.commit(fc, other, rows=[(6, 2), (5, 1)])  # out of order
    assert np.array_equal(area.active(fc), new)


def test_commit_state_and_argument_errors(core):
    model, region, area = make("rram")
    fc = area.layers[-1]
    c = area.c
    assert lib.et_commit_rows(c, fc, 0, 1, ffi.new("int8_t[]", 36)) == lib.ET_ERR_STATE
    assert lib.et_commit_end(c, fc) == lib.ET_ERR_STATE
    assert lib.et_commit_begin(c, 1) == lib.ET_ERR_ARG  # a pooling layer has no weights
    assert lib.et_commit_begin(c, fc) == lib.ET_OK
    assert lib.et_commit_begin(c, area.layers[0]) == lib.ET_ERR_STATE
    mem = region.mem.copy()
    assert lib.et_commit_rows(c, fc, 9, 2, ffi.new("int8_t[]", 72)) == lib.ET_ERR_ARG  # past the last row
    assert lib.et_commit_rows(c, fc, 0, 1, ffi.NULL) == lib.ET_ERR_ARG
    assert np.array_equal(region.mem, mem)
    assert lib.et_commit_abort(c, fc) == lib.ET_OK
    assert lib.et_commit_abort(c, fc) == lib.ET_ERR_STATE
    with pytest.raises(StateError):
        from edgetrain.core import call
        call("et_commit_end", c, fc)
    with pytest.raises(ArgumentError, match="int8 of shape"):
        area.commit(fc, np.zeros((10, 36), np.int16))
    with pytest.raises(ArgumentError, match="has no weights"):
        area.active(2)


def test_open_rejects_bad_areas(core):
    model, region, area = make("flash", size=64 * 1024)
    cfg = dict(area_offset=area.area_offset, area_size=region.size - area.area_offset, ring_slots=8, model_id=0)
    stage = ffi.new("uint8_t[]", 4096)
    c = ffi.new("et_commit_t *")

    def open_with(**change):
        return lib.et_commit_open(c, area.c_model, region.nvm, ffi.new("et_commit_config_t *", {**cfg, **change}), stage, change.pop("stage", 2048))

    assert open_with() == lib.ET_OK
    assert open_with(area_offset=area.area_offset + 8) == lib.ET_ERR_ARG  # not page aligned
    assert open_with(area_size=1024) == lib.ET_ERR_NOMEM
    assert open_with(ring_slots=1) == lib.ET_ERR_ARG
    assert open_with(area_offset=0) == lib.ET_ERR_ARG  # overlaps the factory image
    assert lib.et_commit_open(c, area.c_model, region.nvm, ffi.new("et_commit_config_t *", cfg), stage, 1024) == lib.ET_ERR_NOMEM
    with pytest.raises(NoMemoryError, match="too small for model"):
        TrainingArea(sim_small(), NvmRegion(technology("flash"), 16 * 1024))


def test_another_model_id_reads_as_no_commit_yet():
    model, region, area = make("mram", model_id=1)
    fc = area.layers[-1]
    w = synthetic_update(np.random.default_rng(6), model.layers[fc].weights)
    area.commit(fc, w)
    again = TrainingArea(model, region, model_id=2, place_image=False)
    assert again.info(fc)["active"] == "factory"
    assert np.array_equal(again.active(fc), model.layers[fc].weights)
    same = TrainingArea(model, region, model_id=1, place_image=False)
    assert np.array_equal(same.active(fc), w)


def test_a_bank_that_fails_its_crc_falls_back_to_the_previous_record():
    model, region, area = make("rram")
    fc = area.layers[-1]
    rng = np.random.default_rng(7)
    w1 = synthetic_update(rng, model.layers[fc].weights)
    w2 = synthetic_update(rng, w1)
    area.commit(fc, w1)
    area.commit(fc, w2)
    info = area.info(fc)
    region.mem[info["bank_offset"][1] + 3] ^= 0x01  # bank B (w2) damaged behind the protocol's back
    area.open()
    assert np.array_equal(area.active(fc), w1)
    assert area.stats()["crc_fallbacks"] == 1


@pytest.mark.parametrize("tech", ["rram", "flash"])
def test_worn_cells_are_reported_and_training_continues(tech):
    t = technology(tech).replace(endurance=4 if tech == "rram" else 3, endurance_sigma=0.0)
    model, region, area = make(t)
    fc = area.layers[-1]
    rng = np.random.default_rng(8)
    w = model.layers[fc].weights
    for _ in range(30):
        w = synthetic_update(rng, w, density=0.3)
        area.commit(fc, w)  # never raises: worn cells are counted, the commit completes
        got = area.active(fc)
        info = area.info(fc)
        bank = info["bank_offset"]["AB".index(info["active"])]
        assert np.array_equal(got.reshape(-1), region.mem[bank:bank + got.size].view(np.int8))
    stats, totals = area.stats(), region.totals()
    assert stats["worn_reports"] > 0 and totals["cells_worn"] > 0 and totals["worn_reports"] > 0
    assert int((region.stuck != 0).sum()) == totals["cells_worn"]
    mismatched = int((area.active(fc) != w).sum())
    assert mismatched > 0  # some weights could not take their new value
    area.open()  # the record CRC covers what the cells hold: recovery accepts it
    assert area.stats()["crc_fallbacks"] == 0


def test_area_size_matches_the_layout():
    model, region, area = make("rram", model=sim_small())
    infos = [area.info(t) for t in area.tensors]
    last = infos[-1]
    assert area.area_bytes == last["ring_offset"] + last["ring_slots"] * last["record_bytes"] - area.area_offset
    assert sum(2 * i["bank_bytes"] for i in infos) + sum(i["ring_slots"] * 16 for i in infos) == area.area_bytes
    assert area_size(model, region, 8) == area.area_bytes
    # Written out from the model: per layer its weights, then its int16 bias; banks rounded to the 4-byte unit.
    sizes = []
    for layer in model.layers:
        if layer.weights is not None:
            sizes += [layer.weights.size, 2 * layer.bias.size]
    assert [i["bytes"] for i in infos] == sizes == [72, 16, 576, 16, 4096, 64, 320, 20]
    assert area.area_bytes == sum(2 * (-(-n // 4) * 4) + 8 * 16 for n in sizes)
    assert [i["id"] for i in infos] == [0, 0x8000, 1, 0x8001, 4, 0x8004, 5, 0x8005] == area.tensors


class NaiveInPlace:
    """A deliberately non-atomic commit: new weights programmed over the only copy."""

    def __init__(self, model, region):
        self.area = TrainingArea(model, region)
        self.region = region
        self.layers = self.area.layers
        self.offsets = {}
        at = self.area.area_offset
        for layer in self.layers:
            self.offsets[layer] = at
            w = model.layers[layer].weights.reshape(-1).view(np.uint8)
            region.mem[at:at + w.size] = w
            at += -(-w.size // 16) * 16
        self.shapes = {layer: model.layers[layer].weights.shape for layer in self.layers}

    def recover(self):
        pass

    def active(self, layer):
        n = int(np.prod(self.shapes[layer]))
        return self.region.mem[self.offsets[layer]:self.offsets[layer] + n].view(np.int8).reshape(self.shapes[layer])

    def commit(self, layer, new):
        off = self.offsets[layer]
        data = np.asarray(new, np.int8).reshape(-1).view(np.uint8)
        pu = self.region.tech.program_unit
        padded = np.concatenate([data, self.region.mem[off + data.size:off + -(-data.size // pu) * pu]])
        self.region.program(off, padded.tobytes())


def test_the_harness_catches_a_naive_in_place_commit():
    model = sim_tiny()
    region = NvmRegion(technology("rram"), 8 * 1024, seed=1)
    result = run_schedule(region, NaiveInPlace(model, region), commits=6, exhaustive=True)
    assert result["injection_points"] > 0
    assert result["corrupt"] > 0


def test_exhaustive_power_loss_on_all_four_technologies():
    model = load_model("sim-tiny")
    total = 0
    for name in presets():
        mmap = MemoryMap.preset(name)
        region = mmap.make_nvm(seed=11)
        protocol = AtomicCommit(model, region)
        result = run_schedule(region, protocol, commits=12, exhaustive=True, seed=11, used_bytes=protocol.used_bytes)
        assert result["corrupt"] == 0 and result["retry_failed"] == 0, (name, result["failures"])
        assert result["recovered_old"] > 0
        assert result["recovered_old"] + result["recovered_new"] == result["injection_points"]
        total += result["injection_points"]
    assert total >= 1000


@pytest.mark.slow
def test_exhaustive_power_loss_on_a_larger_model():
    model = sim_small()
    for name in presets():
        region = MemoryMap.preset(name).make_nvm(seed=12)
        protocol = AtomicCommit(model, region)
        result = run_schedule(region, protocol, commits=16, exhaustive=True, seed=12, used_bytes=protocol.used_bytes)
        assert result["corrupt"] == 0 and result["retry_failed"] == 0, (name, result["failures"])
        assert result["injection_points"] >= 1000


from hypothesis import given, strategies as st  # noqa: E402


@given(
    tech=st.sampled_from(TECHS),
    steps=st.lists(
        st.tuples(st.integers(0, 1), st.lists(st.integers(0, 9), max_size=4), st.integers(0, 2**31)), min_size=1, max_size=6
    ),
    power_loss=st.one_of(st.none(), st.integers(1, 200)),
)
def test_random_row_commits_then_reboot_match_a_plain_model(tech, steps, power_loss):
    """Any sequence of partial-row commits, optionally cut by a power loss, recovers to
    exactly the tensors a plain dictionary model of the protocol predicts."""
    model, region, area = make(tech)
    expect = {layer: model.layers[layer].weights.copy() for layer in area.layers}
    lost = False
    if power_loss is not None:
        region.arm_power_loss(power_loss)
    for which, rows, seed in steps:
        layer = area.layers[which]
        n_rows = expect[layer].shape[0]
        chosen = sorted({r % n_rows for r in rows})
        new = expect[layer].copy()
        rng = np.random.default_rng(seed)
        for r in chosen:
            new[r] = rng.integers(-128, 128, new[r].shape, dtype=np.int8)
        try:
            area.commit(layer, new, rows=[(r, 1) for r in chosen])
        except NvmIOError:  # only a power loss may interrupt
            assert power_loss is not None
            lost = True
            pending = (layer, new)
            break
        expect[layer] = new
    region.arm_power_loss(0)
    region.reboot()
    area.open()
    for layer in area.layers:
        got = area.active(layer)
        if lost and layer == pending[0]:
            assert np.array_equal(got, expect[layer]) or np.array_equal(got, pending[1])
        else:
            assert np.array_equal(got, expect[layer])
