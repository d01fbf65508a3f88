"""Drift physics (spec §6.2) and the run-report figures / wear plots."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from edgetrain import ArgumentError, UnsupportedError
from firmware_sim.commit import TrainingArea
from firmware_sim.drift import analog_drift, digital_drift, drift_active_weights
from firmware_sim.models import sim_tiny
from firmware_sim.nvm import NvmRegion, technology
from firmware_sim.report import DEFAULT_SAMPLES_PER_DAY, nvm_report, tensor_writes, write_plots
from firmware_sim.verify import synthetic_update


def test_analog_drift_has_the_spec_sigma_and_clips():
    w = np.zeros(200_000, np.int8)
    analog_drift(w, np.random.default_rng(0))
    sigma_lsb = 10 / math.sqrt(1e5) * 128  # 4.05 LSB
    assert abs(w.astype(float).std() - math.sqrt(sigma_lsb**2 + 1 / 12)) < 0.05
    assert abs(w.astype(float).mean()) < 0.05
    edge = np.full(10_000, 127, np.int8)
    analog_drift(edge, np.random.default_rng(1))
    assert edge.max() == 127 and (edge < 127).mean() > 0.3


def test_digital_drift_flip_rates():
    n = 400_000
    rng = np.random.default_rng(2)
    w = np.zeros(n, np.int8)
    digital_drift(w, rng, p0=1000.0)  # p = 0.01 per bit
    bits = np.unpackbits(w.view(np.uint8)).reshape(n, 8)
    rate = bits.mean(axis=0)
    assert np.all(np.abs(rate - 0.01) < 0.0015), rate
    ref = np.zeros(n, np.int8)
    digital_drift(ref, np.random.default_rng(3), p0=1000.0, mode="reference")
    ref_rate = np.unpackbits(ref.view(np.uint8)).reshape(n, 8)[:, 1:7].mean()
    assert abs(ref_rate - 0.02) < 0.003  # the reference code's Binomial(2, p): about 2p


def test_drift_is_seeded_respects_stuck_bits_and_is_not_a_write():
    region = NvmRegion(technology("rram"), 32 * 1024)
    area = TrainingArea(sim_tiny(), region)
    fc = area.layers[-1]
    area.commit(fc, synthetic_update(np.random.default_rng(4), area.active(fc).copy()))
    info = area.info(fc)
    bank = info["bank_offset"][0]
    region.stuck[bank:bank + 10] = 0xFF
    before = region.mem.copy()
    writes, totals = region.writes.copy(), region.totals()
    changed = drift_active_weights(area, "digital", np.random.default_rng(5), p0=2e4)
    assert changed > 0
    assert np.array_equal(region.writes, writes) and region.totals() == totals  # physics, not writes
    assert np.array_equal(region.mem[bank:bank + 10], before[bank:bank + 10])  # stuck bits hold
    diff = np.nonzero(region.mem != before)[0]
    in_active = [any(o <= d < o + n for o, n in ((bank, info["bytes"]), (area.image_offset + 0, 36))) for d in diff]
    assert all(in_active)
    a, b = np.zeros(1000, np.int8), np.zeros(1000, np.int8)
    analog_drift(a, np.random.default_rng(9))
    analog_drift(b, np.random.default_rng(9))
    assert np.array_equal(a, b)
    with pytest.raises(ArgumentError):
        analog_drift(np.zeros(3, np.int16), np.random.default_rng(0))
    with pytest.raises(ArgumentError):
        digital_drift(np.zeros(3, np.int8), np.random.default_rng(0), mode="odd")


def test_report_figures_against_hand_counts():
    tech = technology("rram").replace(endurance=100, endurance_sigma=0.0)
    region = NvmRegion(tech, 64)
    for _ in range(5):
        region.program(0, b"\x01\x02\x03\x04")
        region.program(0, b"\x00\x00\x00\x00")
    region.program(8, b"\xff\xff\xff\xff")
    rep = nvm_report(region, samples=10, weight_cells=8, samples_per_day=100)
    assert rep["total_cell_writes"] == 10 * 4 + 4
    assert rep["write_density"] == 44 / 8 / 10
    assert rep["max_writes_per_cell"] == 10
    assert rep["bits_flipped"] == 5 * 2 * 5 + 32  # 0x01,0x02,0x03,0x04 = 5 bits, on and off, plus 0xff x4
    assert math.isclose(rep["nvm_energy_j"], 44 * 8 * 10.9e-12)
    # the busiest byte: 10 writes in 10 samples = 1 per sample = 100 per day; endurance 100 -> 1 day
    assert math.isclose(rep["projected_lifetime_days"], 1.0)
    assert rep["worn_cells"] == 0 and rep["samples_per_day"] == 100
    assert nvm_report(NvmRegion(tech, 64), 1, 1)["projected_lifetime_days"] is None
    assert DEFAULT_SAMPLES_PER_DAY == 1440
    rep = nvm_report(region, 10, 8, bytes_read=1000)
    assert math.isclose(rep["nvm_read_energy_j"], 8000 * 1.76e-12)
    with pytest.raises(ArgumentError):
        nvm_report(region, 0, 8)


def test_wear_plots(tmp_path):
    region = NvmRegion(technology("mram"), 32 * 1024)
    area = TrainingArea(sim_tiny(), region)
    rng = np.random.default_rng(6)
    for layer in area.layers * 3:
        area.commit(layer, synthetic_update(rng, area.active(layer).copy(), 0.2))
    fc = area.layers[-1]
    writes = tensor_writes(area, fc)
    assert writes.shape == (2, 10, 36) and writes.sum() > 0
    paths = write_plots(area, tmp_path / "plots")
    assert len(paths) == len(area.layers) + 1
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_without_matplotlib_say_how_to_fix(monkeypatch, tmp_path):
    region = NvmRegion(technology("mram"), 32 * 1024)
    area = TrainingArea(sim_tiny(), region)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UnsupportedError, match=r"pip install 'edgetrain\[plots\]'"):
        write_plots(area, tmp_path)
