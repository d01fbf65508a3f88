"""verify-commit's power-loss harness against an independent reading of the NVM.

The decoder below reads the training area's bytes itself (records, their CRCs, the layout tag,
the banks and the factory image; written from docs/firmware_sim.md, not from the C reader) and
decides which version of each tensor a reboot finds. Wrapped around the C commit, it is checked
at every read the harness makes, after every injection point of every commit: the two readers
must give the same bytes, and the harness's counts then rest on what the NVM really holds.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from edgetrain.model.image import layout
from firmware_sim.commit import PARAMS, tensor_spec
from firmware_sim.memory_map import MemoryMap, presets
from firmware_sim.models import load_model
from firmware_sim.verify import AtomicCommit, _row_runs, run_schedule, sgd_updates

GOLDEN = Path(__file__).parent / "golden"
MAGIC = 0xE7
PROTOCOL = 0x32435445  # "ETC2", the record layout version
COMMITS = 48


def u32(value: int) -> bytes:
    return int(value).to_bytes(4, "little")


class DecodedNvm:
    """Which version of each tensor the NVM bytes hold, decoded from the region alone."""

    def __init__(self, area):
        self.region = area.region
        self.model = area.model
        self.infos = {t: area.info(t) for t in area.tensors}
        first = self.infos[area.tensors[0]]
        self.record_bytes = first["record_bytes"]
        tag = 0
        for v in (PROTOCOL, area.model_id, self.record_bytes, area.region.tech.align, len(area.tensors)):
            tag = zlib.crc32(u32(v), tag)
        for t in area.tensors:
            i = self.infos[t]
            for v in (t, i["bytes"], *i["bank_offset"], i["ring_offset"], i["ring_slots"]):
                tag = zlib.crc32(u32(v), tag)
        self.tag_crc = zlib.crc32(u32(tag))
        _, offsets = layout(area.model, align=max(4, area.region.tech.program_unit))
        self.factory = {}
        for t in area.tensors:
            off = offsets[t & ~PARAMS]
            start = off.weight if not t & PARAMS else (off.bias if self.model.layers[t & ~PARAMS].bias is not None else off.bn)
            self.factory[t] = area.image_offset + start

    def records(self, tensor: int) -> list[tuple[int, int, int]]:
        """Valid records of ``tensor`` as (seq, bank, bank CRC), newest first."""
        info = self.infos[tensor]
        rb = self.record_bytes
        ring = self.region.mem[info["ring_offset"]:info["ring_offset"] + info["ring_slots"] * rb].reshape(-1, rb)
        ids = ring[:, 4].astype(np.uint32) | (ring[:, 5].astype(np.uint32) << 8)
        keep = np.flatnonzero((ring[:, 7] == MAGIC) & (ring[:, 6] <= 1) & (ids == tensor))
        out = []
        for slot in keep:
            rec = ring[slot, :16].tobytes()
            seq = int.from_bytes(rec[0:4], "little")
            if seq and int.from_bytes(rec[12:16], "little") == zlib.crc32(rec[:12], self.tag_crc):
                out.append((seq, rec[6], int.from_bytes(rec[8:12], "little")))
        return sorted(out, reverse=True)

    def active(self, tensor: int) -> np.ndarray:
        shape, dtype = tensor_spec(self.model, tensor)
        n = int(np.prod(shape)) * dtype.itemsize
        mem = self.region.mem
        start = self.factory[tensor]
        for _, bank, crc in self.records(tensor):
            at = self.infos[tensor]["bank_offset"][bank]
            if zlib.crc32(mem[at:at + n].tobytes()) == crc:
                start = at
                break
        return mem[start:start + n].copy().view(dtype).reshape(shape)


class CheckedCommit(AtomicCommit):
    """The C commit under test, every read of it compared with the independent decoder."""

    def __init__(self, model, region, **kw):
        super().__init__(model, region, **kw)
        self.decoder = DecodedNvm(self.area)
        self.reads = 0
        self.mismatches = []

    def active(self, tensor):
        got = super().active(tensor)
        self.reads += 1
        if not np.array_equal(got, self.decoder.active(tensor)) and len(self.mismatches) < 5:
            self.mismatches.append(tensor)
        return got


def exported_model():
    pytest.importorskip("tflite", reason="the tflite package is not installed (pip install 'edgetrain[tflite]')")
    from edgetrain.export import from_tflite

    return from_tflite(GOLDEN / "small_int8.tflite", name="small-exported")


MODELS = {"mcu-cnn": lambda: load_model("mcu-cnn"), "mlp": lambda: load_model("mlp"), "exported": exported_model}


def test_row_runs_count_a_parameter_tensor_by_value_and_weights_by_row():
    old = np.zeros((4, 8), np.int16)  # a batch-norm block: gamma, beta, mean, mean square of 8 channels
    new = old.copy()
    new[1, 2], new[1, 3], new[3, 7] = 5, -1, 1
    assert _row_runs(old, new, params=True) == [(10, 2), (31, 1)]
    weights_old = np.zeros((4, 8), np.int8)
    weights_new = weights_old.copy()
    weights_new[1, 2], weights_new[3, 7] = 5, 1
    assert _row_runs(weights_old, weights_new, params=False) == [(1, 1), (3, 1)]


def test_the_decoder_reads_the_factory_image_then_the_committed_bank():
    """The decoder is itself checked on a case whose answer is known without any reader."""
    model = load_model("mlp")
    region = MemoryMap.preset("rram-mcu").make_nvm(seed=3)
    protocol = CheckedCommit(model, region)
    top = protocol.layers[-1]
    assert np.array_equal(protocol.decoder.active(top), model.layers[top].weights)
    new = model.layers[top].weights.copy()
    new[0, 0] ^= 5
    protocol.commit(top, new)
    assert np.array_equal(protocol.decoder.active(top), new)
    # a record whose CRC does not match is not valid: the decoder falls back to the factory image
    info = protocol.decoder.infos[top]
    (seq, bank, _), = protocol.decoder.records(top)
    assert seq == 1
    slot = next(s for s in range(info["ring_slots"])
                if region.mem[info["ring_offset"] + s * info["record_bytes"] + 7] == MAGIC)
    region.mem[info["ring_offset"] + slot * info["record_bytes"] + 13] ^= 1
    assert protocol.decoder.records(top) == []
    assert np.array_equal(protocol.decoder.active(top), model.layers[top].weights)


@pytest.mark.parametrize("preset", presets())
@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_harness_agrees_with_an_independent_read_of_the_nvm(name, preset):
    model = MODELS[name]()
    updates = sgd_updates(model, COMMITS, seed=5)
    assert len(updates) == COMMITS and any(t & PARAMS for t, _, _ in updates)
    region = MemoryMap.preset(preset).make_nvm(seed=5)
    protocol = CheckedCommit(model, region)
    result = run_schedule(region, protocol, exhaustive=False, max_points=16, seed=5, used_bytes=protocol.used_bytes,
                          updates=updates)
    assert protocol.mismatches == []
    assert protocol.reads >= result["injection_points"] * len(protocol.tensors)
    assert result["commits"] == COMMITS
    assert result["corrupt"] == 0 and result["retry_failed"] == 0, result["failures"]
    assert result["recovered_old"] + result["recovered_new"] == result["injection_points"] > COMMITS
    # after the schedule, the NVM holds exactly the last version of every tensor the updates wrote
    expect = {t: new for t, new, _ in updates}
    for t in protocol.tensors:
        want = expect.get(t)
        if want is None:
            layer = model.layers[t & ~PARAMS]
            want = layer.weights if not t & PARAMS else (layer.bias if layer.bias is not None else layer.bn)
        assert np.array_equal(protocol.decoder.active(t), np.asarray(want).astype(protocol.decoder.active(t).dtype))
